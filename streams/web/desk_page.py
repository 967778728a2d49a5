"""Web views of the newsroom desk's page: the page at /desk and its script and style sheet."""

from __future__ import annotations

from faust.web import Request, Response, View

from streams.web.live_page import serve_static

PAGE_FILE = "desk.html"

# Served by name from this fixed list only, so no request path can reach another file. The
# page holds no data (it asks /api/desk/ for it with the person's token), so none of these
# is guarded; the page's HTML is served at /desk alone.
STATIC_FILES: dict[str, str] = {
    "desk.js": "text/javascript; charset=utf-8",
    "desk.css": "text/css; charset=utf-8",
}
# With the live page's headers: no-cache, nosniff, and for the HTML its strict
# Content-Security-Policy (the desk's page talks to this worker and nothing else).
PAGE_FILES: dict[str, str] = {PAGE_FILE: "text/html; charset=utf-8", **STATIC_FILES}


class DeskPage(View):
    """The duty editor's page: held alerts, held calls, recent actions, source conflicts."""

    async def get(self, request: Request) -> Response:
        return serve_static(self, PAGE_FILE, PAGE_FILES)


class DeskPageStatic(View):
    """The desk page's script and style sheet (and nothing else)."""

    async def get(self, request: Request, name: str) -> Response:
        if name not in STATIC_FILES:  # the HTML has its own path; nothing else is served
            return self.error(404, "Not Found")
        return serve_static(self, name, PAGE_FILES)


ROUTES: dict[str, type[View]] = {
    "/desk": DeskPage,
    "/desk/": DeskPage,  # as typed into an address bar; the page's own links are absolute
    "/desk/static/{name}": DeskPageStatic,
}
