"""HTTP views of the worker: API, live page, health and metrics, admin, the newsroom desk."""

from __future__ import annotations

import faust
from aiohttp import web as aiohttp_web
from aiohttp_cors import ResourceOptions
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.pipeline.context import context_of
from streams.settings import Settings
from streams.web import admin, api, desk, desk_page, health, live_page, pa_api

# Names the service and nothing else: aiohttp's default gives Python's and its own versions.
SERVER_NAME = "election-night-streams"
# A browser asks again after this long; the answer changes only with ELECTION_CORS_ALLOW_ORIGIN.
CORS_MAX_AGE_S = 3600


def register_views(app: faust.App) -> None:
    """Serve every view of the worker on `app`, each at its path, with the same headers."""
    for routes in (
        api.ROUTES,
        pa_api.ROUTES,
        live_page.ROUTES,
        health.ROUTES,
        admin.ROUTES,
        desk.ROUTES,
        desk_page.ROUTES,
    ):
        for path, view in routes.items():
            app.page(path)(view)
    if isinstance(app.web, AiohttpWeb):
        app.web.web_app.on_response_prepare.append(_common_headers)
        _allow_cross_origin(app.web, context_of(app).settings)

        async def end_live_streams(web_app: aiohttp_web.Application) -> None:
            # Before the server waits for its handlers: else it waits out every event stream.
            await api.close_live_streams(context_of(app))

        app.web.web_app.on_shutdown.append(end_live_streams)


def cors_options(settings: Settings) -> dict[str, ResourceOptions]:
    """What browsers on other origins may do with the graphics API: read it (GET, HEAD), see
    its ETag, and send the two headers its clients set themselves: If-None-Match to poll,
    Last-Event-ID to resume an event stream. Nothing for ELECTION_CORS_ALLOW_ORIGIN empty."""
    origin = settings.cors_allow_origin
    if not origin:
        return {}
    return {
        origin: ResourceOptions(
            allow_methods=("GET", "HEAD"),
            allow_headers=("If-None-Match", "Last-Event-ID"),
            expose_headers=("ETag",),
            max_age=CORS_MAX_AGE_S,
        )
    }


def _allow_cross_origin(web: AiohttpWeb, settings: Settings) -> None:
    """CORS with preflight, by aiohttp-cors (Faust's own CORS), on the graphics API alone.

    Not through Faust's web_cors_options: that covers every view (the admin endpoints too)
    and registers no HEAD route for them. The admin endpoints stay same-origin: operators
    call them with curl and the CLIs, and no page needs to."""
    options = cors_options(settings)
    if not options:
        return
    graphics = api.ROUTES.keys() | pa_api.ROUTES.keys()
    resources = [r for r in web.web_app.router.resources() if r.canonical in graphics]
    for resource in resources:
        web.cors.add(resource, options)
    cross_origin = frozenset(resources)

    async def vary_by_origin(
        request: aiohttp_web.Request, response: aiohttp_web.StreamResponse
    ) -> None:
        # aiohttp-cors answers with the request's Origin, even for "*": a cache must keep
        # one copy per Origin (a request without one included).
        if request.match_info.route.resource in cross_origin:
            vary = response.headers.get("Vary")
            response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"

    web.web_app.on_response_prepare.append(vary_by_origin)


async def _common_headers(
    request: aiohttp_web.Request, response: aiohttp_web.StreamResponse
) -> None:
    # Every answer, JSON and errors included: no browser reads one as another content type.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER_NAME
