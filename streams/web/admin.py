"""Admin endpoints: reset and rebuild an election's state, for admins, each on the audit trail."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web as aiohttp_web
from faust.web import Request

from schemas.audit import AuditAction, Role
from streams.pipeline.audit import AuditNotWritten, worker_audit_trail
from streams.pipeline.context import context_of
from streams.store.rebuild import rebuild_now, reset_election
from streams.web.guard import GuardedView, answer, current_person

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/admin/"
NOT_RECORDED = "the audit trail could not be written, so nothing was done; try again"


class ResetView(GuardedView):
    """POST: delete this election's Redis state, as `election-reset` does (admins)."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.ADMIN}

    async def post(self, request: Request) -> Any:
        context = context_of(self.app)
        settings = context.settings
        who = current_person()
        trail = worker_audit_trail(self.app)
        before = await context.store.tallied()
        try:
            async with trail.acting(AuditAction.RESET, who, settings.election_id, before) as done:
                removed = await reset_election(context.store)
                done.after = {"removed_keys": removed}
        except AuditNotWritten:
            log.exception("admin reset of %s by %s not done", settings.election_id, who.name)
            return answer(503, NOT_RECORDED)
        log.warning(
            "admin reset of %s by %s: removed %d keys", settings.election_id, who.name, removed
        )
        return aiohttp_web.json_response(
            {"election_id": settings.election_id, "removed_keys": removed}
        )


class RebuildView(GuardedView):
    """POST: re-make this election's Redis state from the Kafka log, as `election-rebuild`
    does, inside the running worker (admins); answers what was read and how long."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.ADMIN}

    async def post(self, request: Request) -> Any:
        context = context_of(self.app)
        settings = context.settings
        who = current_person()
        trail = worker_audit_trail(self.app)
        before = await context.store.tallied()
        try:
            async with trail.acting(AuditAction.REBUILD, who, settings.election_id, before) as done:
                report = await rebuild_now(context.store, settings, context.register)
                done.after = (
                    {"rebuilt_by": "another worker"}
                    if report is None
                    else {
                        "messages": report.messages,
                        "seconds": round(report.seconds, 3),
                        **await context.store.tallied(),
                    }
                )
        except AuditNotWritten:
            log.exception("admin rebuild of %s by %s not done", settings.election_id, who.name)
            return answer(503, NOT_RECORDED)
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


ROUTES: dict[str, type[GuardedView]] = {
    ADMIN_PREFIX + "reset": ResetView,
    ADMIN_PREFIX + "rebuild": RebuildView,
}
