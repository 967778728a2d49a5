"""Web views of the live results page: the page itself, its static files and the hex map."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from faust.web import Request, Response, View

from streams.pipeline.context import context_of

STATIC_DIR = Path(__file__).resolve().parent / "static"
HEXMAP_FILE = "constituencies.hexjson"

# Served by name from this fixed list only, so no request path can reach another file.
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# The page talks to this worker and nothing else; the policy makes a stray CDN link or an
# injected script fail loudly in the browser instead of quietly reaching out.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# Revalidate on every load: after a deploy, a wall screen picks up the new page on refresh.
_COMMON_HEADERS: dict[str, str] = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


def static_file(name: str, files: Mapping[str, str] = STATIC_FILES) -> tuple[bytes, str] | None:
    """Body and content type of one of a page's `files` (name -> content type) in the static
    folder, or None if it is not one of them."""
    content_type = files.get(name)
    if content_type is None:
        return None
    try:
        # Read per request: the files are small, and an edited page shows on the next reload.
        return (STATIC_DIR / name).read_bytes(), content_type
    except FileNotFoundError:
        return None


@lru_cache(maxsize=2)
def hexmap_bytes(data_dir: Path) -> bytes:
    """The election's hex cartogram, as shipped; it never changes during a night."""
    return (data_dir / HEXMAP_FILE).read_bytes()


def page_headers(content_type: str) -> dict[str, str]:
    """Response headers for one of the page's files (or the hex map)."""
    # Content-Type goes in as a header: aiohttp refuses a charset in its content_type argument.
    headers = {"Content-Type": content_type, **_COMMON_HEADERS}
    if content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return headers


def serve_static(view: View, name: str, files: Mapping[str, str] = STATIC_FILES) -> Response:
    """One of a page's `files`, with the pages' headers (for HTML, the strict CSP); else 404."""
    found = static_file(name, files)
    if found is None:
        return view.error(404, "Not Found")
    body, content_type = found
    return view.bytes(body, headers=page_headers(content_type))


class LivePage(View):
    """The live results screen."""

    async def get(self, request: Request) -> Response:
        return serve_static(self, "index.html")


class LivePageStatic(View):
    """The page's script and style sheet (and nothing else)."""

    async def get(self, request: Request, name: str) -> Response:
        return serve_static(self, name)


class HexMap(View):
    """The constituency hex cartogram (HexJSON, odd-r layout, keyed by ONS id)."""

    async def get(self, request: Request) -> Response:
        try:
            body = hexmap_bytes(context_of(self.app).settings.data_dir)
        except FileNotFoundError:
            return self.error(404, f"no {HEXMAP_FILE} in the election's data directory")
        return self.bytes(body, headers=page_headers("application/json"))


ROUTES: dict[str, type[View]] = {
    "/": LivePage,
    "/static/{name}": LivePageStatic,
    "/api/hexmap": HexMap,
}
