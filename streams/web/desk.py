"""The newsroom desk over HTTP: hand corrections of a seat, and every source's figures for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from aiohttp import web as aiohttp_web
from faust.web import Request

from schemas.audit import AuditAction, AuditStage, Role
from schemas.declaration import Declaration
from streams.pipeline.audit import AuditNotWritten, AuditTrail, worker_audit_trail
from streams.pipeline.context import ElectionApp, WorkerContext, context_of
from streams.pipeline.topics import send_acknowledged
from streams.rules.corrections import (
    DESK,
    RevisionRefused,
    desk_declaration,
    desk_entry,
    desk_revision,
    sources_report,
)
from streams.rules.desk import Person
from streams.rules.reference import ConstituencyRef
from streams.rules.validation import FeedPosition, Rejected, validate_message
from streams.store.desk import DeskRevisions
from streams.web.admin import NOT_RECORDED
from streams.web.guard import GuardedView, answer, current_person

log = logging.getLogger(__name__)

DESK_PREFIX = "/api/desk/"
DECLARATION = "declaration"  # the only message_type the desk takes: it corrects seats
# The Kafka header naming the audit action a hand correction went out under.
AUDIT_HEADER = "audit-action"
# Two editors correcting one seat at once: the one who loses the race for a revision takes
# the next, this many times, before being told to try again.
CLAIM_ATTEMPTS = 5
# As the audit trail's records: a person waits on the answer.
PUBLISH_TIMEOUT_S = 15.0


def _report(context: WorkerContext, ref: ConstituencyRef, counted: str | None, views: Any) -> Any:
    settings = context.settings
    return sources_report(
        ref,
        counted,
        views,
        settings.source_rules(),
        settings.election_id,
        settings.mode == "rehearsal",
    )


class SeatSourcesView(GuardedView):
    """GET: every source's latest figures for a seat, whose are on air, and where they
    disagree (viewers and up)."""

    roles: ClassVar[Mapping[str, Role]] = {"GET": Role.VIEWER}

    async def get(self, request: Request, ons_id: str) -> Any:
        context = context_of(self.app)
        ref = context.register.constituency(ons_id)
        if ref is None:
            return answer(404, f"no constituency {ons_id}")
        seat = await context.store.seat_sources(ons_id)
        return aiohttp_web.json_response(_report(context, ref, seat.counted, seat.views))


class _Refused(Exception):
    """A correction turned down: the status and the reason to answer with, on the record."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class DeclarationsView(GuardedView):
    """POST: a seat's result entered or corrected by hand (editors and up), as a declaration
    from `desk:<name>` on the declarations topic, after the same validation as any feed's.
    202 with its revision and offset; 422 (or 409 for a revision taken) with the reason."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.EDITOR}

    async def post(self, request: Request) -> Any:
        app = self.app
        context = context_of(app)
        who = current_person()
        trail = worker_audit_trail(app)
        raw = await request.read()
        entry = desk_entry(raw, context.settings.max_message_bytes)
        try:
            declaration = self._validated(context, raw, entry, who)
            ref = context.register.constituencies[declaration.constituency_id]
            seat = await context.store.seat_sources(ref.ons_id)
            before = _report(context, ref, seat.counted, seat.views)
            on_record = seat.views[DESK].revision if DESK in seat.views else 0
            asked = declaration.revision if entry is not None and "revision" in entry else None
            revision = await self._claim(context, ref.ons_id, asked, on_record, who)
        except _Refused as refused:
            return await self._refuse(trail, who, entry, refused)
        declaration = declaration.model_copy(update={"revision": revision})
        try:
            return await self._publish(cast(ElectionApp, app), trail, who, declaration, before)
        except AuditNotWritten:
            log.exception("hand correction of %s by %s not sent", ref.ons_id, who.name)
            return answer(503, NOT_RECORDED)

    def _validated(
        self, context: WorkerContext, raw: bytes, entry: dict[str, Any] | None, who: Person
    ) -> Declaration:
        """The entry as the desk's declaration, validated as the declaration agent does (the
        bytes as they came when they are no JSON object: validation says what is wrong)."""
        settings = context.settings
        if entry is not None and entry.get("message_type") != DECLARATION:
            raise _Refused(
                422,
                "not_a_declaration",
                'the desk takes declarations: "message_type": "declaration"',
            )
        rehearsal = settings.mode == "rehearsal"
        value = desk_declaration(entry, who.name, rehearsal) if entry is not None else raw
        key = entry.get("constituency_id") if entry is not None else None
        now = dt.datetime.now(dt.UTC)
        verdict = validate_message(
            value,
            FeedPosition(
                settings.topic_declarations,
                -1,  # not on Kafka yet
                -1,
                key.encode() if isinstance(key, str) else None,
                now,
            ),
            context.register,
            now,
            max_bytes=settings.max_message_bytes,
            window=settings.night_window(),
            mode=settings.mode,
        )
        if isinstance(verdict, Rejected):
            rejection = verdict.rejection
            raise _Refused(422, rejection.reason.value, rejection.detail)
        assert isinstance(verdict.message, Declaration)  # its message_type said so
        return verdict.message

    async def _claim(
        self, context: WorkerContext, ons_id: str, asked: int | None, on_record: int, who: Person
    ) -> int:
        """The revision this correction goes out as, taken so no other correction has it."""
        revisions = DeskRevisions(context.redis, context.namespace)
        for _ in range(CLAIM_ATTEMPTS):
            claimed = await revisions.highest_claimed(ons_id)
            try:
                revision = desk_revision(
                    asked, on_record, claimed, context.settings.max_revision_jump
                )
            except RevisionRefused as refused:
                raise _Refused(
                    409 if refused.reason == "taken" else 422, refused.reason, refused.detail
                ) from refused
            if await revisions.claim(ons_id, revision, who.name):
                return revision
        raise _Refused(409, "taken", "other corrections of this seat are going out: try again")

    async def _refuse(
        self, trail: AuditTrail, who: Person, entry: dict[str, Any] | None, refused: _Refused
    ) -> Any:
        target = entry.get("constituency_id") if entry is not None else None
        log.warning("hand correction by %s refused: %s", who.name, refused.detail)
        try:
            await trail.refuse(
                AuditAction.CORRECTION,
                who,
                target if isinstance(target, str) else "unknown",
                refused.detail,
                after=entry,
            )
        except AuditNotWritten:
            log.exception("the refusal of a hand correction by %s is not on record", who.name)
        return aiohttp_web.json_response(
            {"error": refused.reason, "detail": refused.detail}, status=refused.status
        )

    async def _publish(
        self,
        app: ElectionApp,
        trail: AuditTrail,
        who: Person,
        declaration: Declaration,
        before: dict[str, Any],
    ) -> Any:
        """On the record first, then on the declarations topic, then its outcome."""
        ons_id = declaration.constituency_id
        after = declaration.model_dump(mode="json")
        intended = await trail.intend(AuditAction.CORRECTION, who, ons_id, before, after)
        try:
            sent = await asyncio.wait_for(
                send_acknowledged(
                    app.night_topics.declarations,
                    ons_id.encode(),
                    declaration.model_dump_json().encode(),
                    {AUDIT_HEADER: intended.action_id.encode()},
                ),
                PUBLISH_TIMEOUT_S,
            )
        except Exception as error:
            detail = f"not acknowledged by Kafka: {type(error).__name__}: {error}"
            await trail.settle(intended, AuditStage.FAILED, detail=detail)
            log.error("hand correction of %s by %s: %s", ons_id, who.name, detail)
            return answer(503, f"the correction may not be on Kafka ({detail}); send it again")
        where = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
        await trail.settle(intended, AuditStage.DONE, after={**after, "kafka": where})
        log.warning(
            "hand correction of %s by %s: desk revision %d at %s[%d]@%d",
            ons_id,
            who.name,
            declaration.revision,
            sent.topic,
            sent.partition,
            sent.offset,
        )
        return aiohttp_web.json_response(
            {
                "constituency_id": ons_id,
                "source": declaration.source,
                "revision": declaration.revision,
                "rehearsal": declaration.rehearsal,
                "action_id": intended.action_id,
                **where,
            },
            status=202,
        )


ROUTES: dict[str, type[GuardedView]] = {
    DESK_PREFIX + "declarations": DeclarationsView,
    DESK_PREFIX + "seats/{ons_id}/sources": SeatSourcesView,
}
