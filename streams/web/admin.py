"""Admin endpoints that change state, behind one bearer token (ELECTION_ADMIN_TOKEN).

Everything else the worker serves is read-only. A view that changes state starts with

    denied = require_admin(request)
    if denied is not None:
        return denied

and lives under ADMIN_PREFIX; tests/unit/test_admin.py checks that every route answering
anything but GET, HEAD or OPTIONS refuses a request without the token.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web as aiohttp_web
from faust.web import Request, View

from streams.pipeline.context import context_of
from streams.settings import Settings
from streams.store.rebuild import rebuild_now, reset_election

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/admin/"
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _answer(status: int, error: str, **headers: str) -> aiohttp_web.Response:
    return aiohttp_web.json_response({"error": error}, status=status, headers=headers)


def require_admin(request: Request, settings: Settings) -> Any:
    """None when the request carries `Authorization: Bearer <ELECTION_ADMIN_TOKEN>`; else the answer
    to send instead: 403 while no ELECTION_ADMIN_TOKEN is set (admin disabled), 401 for a missing or
    wrong token."""
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        return _answer(403, "admin endpoints are disabled: set ELECTION_ADMIN_TOKEN to enable them")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    # Constant time, so the answer's timing does not spell the token out.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        log.warning("admin request to %s refused: missing or wrong token", request.url.path)
        return _answer(401, "missing or wrong admin token", **{"WWW-Authenticate": "Bearer"})
    return None


class ResetView(View):
    """POST: delete this election's Redis state, as `election-reset` does (token required)."""

    async def post(self, request: Request) -> Any:
        context = context_of(self.app)
        settings = context.settings
        denied = require_admin(request, settings)
        if denied is not None:
            return denied
        removed = await reset_election(context.store)
        log.warning("admin reset of %s: removed %d keys", settings.election_id, removed)
        return aiohttp_web.json_response(
            {"election_id": settings.election_id, "removed_keys": removed}
        )


class RebuildView(View):
    """POST: re-make this election's Redis state from the Kafka log, as `election-rebuild`
    does, inside the running worker (token required); answers what was read and how long."""

    async def post(self, request: Request) -> Any:
        context = context_of(self.app)
        settings = context.settings
        denied = require_admin(request, settings)
        if denied is not None:
            return denied
        report = await rebuild_now(context.store, settings, context.register)
        if report is None:  # another worker's rebuild finished while this one waited
            return aiohttp_web.json_response(
                {"election_id": settings.election_id, "rebuilt_by": "another worker"}
            )
        return aiohttp_web.json_response(
            {
                "election_id": settings.election_id,
                "messages": report.messages,
                "seconds": round(report.seconds, 3),
                "outcomes": dict(report.outcomes),
                "already_on_kafka": dict(report.already_sent),
            }
        )


ROUTES: dict[str, type[View]] = {
    ADMIN_PREFIX + "reset": ResetView,
    ADMIN_PREFIX + "rebuild": RebuildView,
}
