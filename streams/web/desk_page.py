"""Web views of the newsroom desk's page: the page at /desk and its script and style sheet."""

from __future__ import annotations

from faust.web import Request, Response, View

from streams.web.live_page import STATIC_DIR, page_headers

PAGE_FILE = "desk.html"

# Served by name from this fixed list only, so no request path can reach another file. The
# page holds no data (it asks /api/desk/ for it with the person's token), so none of these
# is guarded; the page's HTML is served at /desk alone.
STATIC_FILES: dict[str, str] = {
    "desk.js": "text/javascript; charset=utf-8",
    "desk.css": "text/css; charset=utf-8",
}
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"


def desk_file(name: str) -> tuple[bytes, str] | None:
    """Body and content type of one of the page's files, or None if it is not one of them."""
    content_type = PAGE_CONTENT_TYPE if name == PAGE_FILE else STATIC_FILES.get(name)
    if content_type is None:
        return None
    try:
        # Read per request, as the live page's: small files, and an edit shows on reload.
        return (STATIC_DIR / name).read_bytes(), content_type
    except FileNotFoundError:
        return None


def _serve(view: View, name: str) -> Response:
    found = desk_file(name)
    if found is None:
        return view.error(404, "Not Found")
    body, content_type = found
    # The live page's headers: no-cache, nosniff, and for the HTML its strict
    # Content-Security-Policy (the desk's page talks to this worker and nothing else).
    return view.bytes(body, headers=page_headers(content_type))


class DeskPage(View):
    """The duty editor's page: held alerts, held calls, recent actions, source conflicts."""

    async def get(self, request: Request) -> Response:
        return _serve(self, PAGE_FILE)


class DeskPageStatic(View):
    """The desk page's script and style sheet (and nothing else)."""

    async def get(self, request: Request, name: str) -> Response:
        if name not in STATIC_FILES:  # the HTML has its own path; nothing else is served
            return self.error(404, "Not Found")
        return _serve(self, name)


ROUTES: dict[str, type[View]] = {
    "/desk": DeskPage,
    "/desk/": DeskPage,  # as typed into an address bar; the page's own links are absolute
    "/desk/static/{name}": DeskPageStatic,
}
