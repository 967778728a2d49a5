"""Admin endpoints that change state, behind a bearer token (ADMIN_TOKEN): the one guard for all.

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

from streams.app import app
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/admin/"
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _answer(status: int, error: str, **headers: str) -> aiohttp_web.Response:
    return aiohttp_web.json_response({"error": error}, status=status, headers=headers)


def require_admin(request: Request, settings: Settings | None = None) -> Any:
    """None when the request carries `Authorization: Bearer <ADMIN_TOKEN>`; else the answer
    to send instead: 403 while no ADMIN_TOKEN is set (admin disabled), 401 for a missing or
    wrong token."""
    settings = settings or get_settings()
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        return _answer(403, "admin endpoints are disabled: set ADMIN_TOKEN to enable them")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    # Constant time, so the answer's timing does not spell the token out.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        log.warning("admin request to %s refused: missing or wrong token", request.url.path)
        return _answer(401, "missing or wrong admin token", **{"WWW-Authenticate": "Bearer"})
    return None


@app.page(ADMIN_PREFIX + "reset")
class ResetView(View):
    """POST: delete this election's Redis state, as `election-reset` does (token required)."""

    async def post(self, request: Request) -> Any:
        denied = require_admin(request)
        if denied is not None:
            return denied
        from scripts.reset_election import reset_election

        settings = get_settings()
        removed = await reset_election(
            settings.redis_url, settings.election_id, settings.redis_key_prefix
        )
        log.warning("admin reset of %s: removed %d keys", settings.election_id, removed)
        return aiohttp_web.json_response(
            {"election_id": settings.election_id, "removed_keys": removed}
        )


@app.page(ADMIN_PREFIX + "rebuild")
class RebuildView(View):
    """POST: re-make this election's Redis state from the Kafka log, as `election-rebuild`
    does, inside the running worker (token required); answers what was read and how long."""

    async def post(self, request: Request) -> Any:
        denied = require_admin(request)
        if denied is not None:
            return denied
        from streams.rebuild import rebuild_now
        from streams.resources import redis_client, register
        from streams.tally_store import TallyStore

        settings = get_settings()
        store = TallyStore(redis_client(), settings.election_id, settings.redis_key_prefix)
        report = await rebuild_now(store, settings, register())
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
