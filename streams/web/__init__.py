"""HTTP views of the worker: API, live page, health and metrics, admin."""

from __future__ import annotations

import faust
from aiohttp import web as aiohttp_web
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.pipeline.context import context_of
from streams.web import admin, api, health, live_page

# Names the service and nothing else: aiohttp's default gives Python's and its own versions.
SERVER_NAME = "election-night-streams"


def register_views(app: faust.App) -> None:
    """Serve every view of the worker on `app`, each at its path, with the same headers."""
    for routes in (api.ROUTES, live_page.ROUTES, health.ROUTES, admin.ROUTES):
        for path, view in routes.items():
            app.page(path)(view)
    if isinstance(app.web, AiohttpWeb):
        app.web.web_app.on_response_prepare.append(_common_headers)

        async def end_live_streams(web_app: aiohttp_web.Application) -> None:
            # Before the server waits for its handlers: else it waits out every event stream.
            await api.close_live_streams(context_of(app))

        app.web.web_app.on_shutdown.append(end_live_streams)


async def _common_headers(
    request: aiohttp_web.Request, response: aiohttp_web.StreamResponse
) -> None:
    # Every answer, JSON and errors included: no browser reads one as another content type.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER_NAME
