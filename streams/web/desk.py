"""The newsroom desk over HTTP: held alerts and decisions on them, held calls, hand corrections
of a seat and every source's figures for it, and the desk's live view."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request
from redis.exceptions import RedisError

from schemas.audit import AuditAction, AuditStage, Role
from schemas.declaration import Declaration
from schemas.desk import DeskAction, DeskQueue
from streams.pipeline.audit import AuditNotWritten, AuditTrail, worker_audit_trail
from streams.pipeline.context import ElectionApp, WorkerContext, context_of
from streams.pipeline.desk_decisions import DecisionRefused, Edits, decide
from streams.pipeline.topics import send_acknowledged
from streams.rules.corrections import (
    DESK,
    ChoiceRefused,
    RevisionRefused,
    chosen_entry,
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
from streams.web.api import EVENT_STREAM_HEADERS, HEARTBEAT_S
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
        return await self.correct(await request.read())

    async def correct(self, raw: bytes) -> Any:
        """Validate, claim a revision for and send one hand correction, on the record."""
        app = self.app
        context = context_of(app)
        who = current_person()
        trail = worker_audit_trail(app)
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


class ChooseSourceView(DeclarationsView):
    """POST {"source": "pa"}: put that source's latest figures for the seat on air, as a hand
    correction (editors and up): where sources disagree, the editor's choice between them."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.EDITOR}

    async def post(self, request: Request, ons_id: str) -> Any:  # type: ignore[override]
        context = context_of(self.app)
        ref = context.register.constituency(ons_id)
        if ref is None:
            return answer(404, f"no constituency {ons_id}")
        try:
            body = await _json_body(request)
            source = _text_field(body, "source")
        except _Refused as refused:
            return _refusal(refused)
        seat = await context.store.seat_sources(ref.ons_id)
        view = seat.views.get(source or "")
        on_air = await context.store.seat(ref.ons_id)
        if view is None or on_air is None:
            known = ", ".join(sorted(seat.views)) or "none yet"
            return answer(404, f"no figures from {source!r} for {ref.name} (sources: {known})")
        try:
            entry = chosen_entry(on_air, view, context.register.parties)
        except ChoiceRefused as refused:
            return answer(422, str(refused))
        return await self.correct(orjson.dumps(entry))


# A desk request's body is a headline and a note or two; anything bigger is not one.
MAX_BODY_BYTES = 16_384
# How often a desk's live view looks for a change, and sends a keep-alive when none came.
DESK_POLL_S = 1.0


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (empty body: {}), or _Refused."""
    raw = await request.content.read(MAX_BODY_BYTES + 1)  # type: ignore[attr-defined]
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused(413, "too_large", f"a desk request is at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _Refused(400, "not_json", f"the body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise _Refused(400, "not_json", "the body is not a JSON object")
    return body


def _text_field(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _Refused(422, "invalid", f"{name} is not text")


def _refusal(refused: _Refused) -> Any:
    return aiohttp_web.json_response(
        {"error": refused.reason, "detail": refused.detail}, status=refused.status
    )


def _conflict_summary(report: dict[str, Any]) -> dict[str, Any]:
    """A seat's sources report as the desk lists it: each source's winner and votes."""
    sources = []
    for figures in report["sources"]:
        winner = figures.get("winner")
        sources.append(
            {
                "source": figures["source"],
                "revision": figures["revision"],
                "kind": figures["kind"],
                "winner": f"{winner['name']} ({winner.get('party') or 'Ind'})" if winner else None,
                "majority": figures.get("majority"),
                "votes": {
                    f"{c['name']} ({c.get('party') or 'Ind'})": c.get("votes")
                    for c in figures.get("candidates", [])
                },
            }
        )
    return {
        "constituency_id": report["constituency_id"],
        "constituency_name": report["constituency_name"],
        "counted": report["on_air"],
        "sources": sources,
        "differences": [d for c in report["conflicts"] for d in c["differences"]],
    }


async def desk_queue(context: WorkerContext) -> DeskQueue:
    """Everything the desk shows, read now."""
    register = context.register
    names = {ons_id: ref.name for ons_id, ref in register.constituencies.items()}
    state = await context.holds.state(names)
    conflicts = []
    for ons_id in await context.store.seats_reported_by_several():
        ref = register.constituency(ons_id)
        if ref is None:
            continue
        seat = await context.store.seat_sources(ons_id)
        report = _report(context, ref, seat.counted, seat.views)
        if report["conflicts"]:
            conflicts.append(_conflict_summary(report))
    return DeskQueue(
        mode=context.settings.mode,
        now=dt.datetime.now(dt.UTC),
        version=state.version,
        held=state.held,
        calls_held=state.calls_held,
        actions=state.actions,
        conflicts=conflicts,
    )


class DeskQueueView(GuardedView):
    """GET: held alerts, held calls, recent actions and source conflicts (viewers and up)."""

    roles: ClassVar[Mapping[str, Role]] = {"GET": Role.VIEWER}

    async def get(self, request: Request) -> Any:
        queue = await desk_queue(context_of(self.app))
        return aiohttp_web.Response(
            body=queue.model_dump_json().encode(), content_type="application/json"
        )


class DeskEventsView(GuardedView):
    """GET: the desk live, as server-sent events: `desk` with the whole queue whenever it
    changes, a comment line as a keep-alive. The page reads it with fetch, which (unlike
    EventSource) can send the Authorization header."""

    roles: ClassVar[Mapping[str, Role]] = {"GET": Role.VIEWER}

    async def get(self, request: Request) -> Any:
        context = context_of(self.app)
        response = aiohttp_web.StreamResponse(headers=EVENT_STREAM_HEADERS)
        await response.prepare(request)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        sent = b""
        last_write = loop.time()
        try:
            while not self.app.should_stop:
                queue = await desk_queue(context)
                # `now` moves every time: what the desk holds is the rest.
                body = queue.model_dump_json(exclude={"now"}).encode()
                if body != sent:
                    data = queue.model_dump_json().encode()
                    await response.write(b"event: desk\ndata: " + data + b"\n\n")
                    sent, last_write = body, loop.time()
                elif loop.time() - last_write >= HEARTBEAT_S:
                    await response.write(b": heartbeat\n\n")
                    last_write = loop.time()
                await asyncio.sleep(DESK_POLL_S)
        except (ConnectionResetError, RedisError) as error:
            log.info("desk events: stream ended: %s", type(error).__name__)
        return response


class AlertDecisionView(GuardedView):
    """POST .../approve (body {} or {"headline", "body"}: an edit) or .../kill ({"reason"}):
    a decision on a held alert, on the audit trail, taken once (editors and up)."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.EDITOR}

    async def post(self, request: Request, alert_id: str, verb: str) -> Any:
        context = context_of(self.app)
        who = current_person()
        if verb not in ("approve", "kill"):
            return answer(404, f"no decision {verb!r}: approve or kill")
        try:
            body = await _json_body(request)
            edits = Edits(_text_field(body, "headline"), _text_field(body, "body"))
            reason = _text_field(body, "reason")
        except _Refused as refused:
            return _refusal(refused)
        if verb == "kill" and edits.any:
            return answer(422, "a killed alert is not edited")
        trail = worker_audit_trail(self.app)
        try:
            action = await decide(
                context.holds,
                trail,
                who,
                alert_id,
                "kill" if verb == "kill" else "approve",
                edits,
                reason,
            )
        except DecisionRefused as refused:
            return aiohttp_web.json_response(
                {
                    "error": refused.error,
                    "detail": refused.detail,
                    **(
                        {"decision": refused.earlier.model_dump(mode="json", exclude_none=True)}
                        if refused.earlier
                        else {}
                    ),
                },
                status=refused.status,
            )
        except AuditNotWritten:
            log.exception("desk decision on %s by %s not taken", alert_id, who.name)
            return answer(503, NOT_RECORDED)
        return aiohttp_web.json_response(
            {"alert_id": alert_id, "decision": action.action, "by": who.name}
        )


class SeatCallView(GuardedView):
    """POST {"hold": true, "note": ...}: do not call this seat yet (its alerts wait on the
    desk, whatever their policy); {"hold": false}: let the call go (editors and up)."""

    roles: ClassVar[Mapping[str, Role]] = {"POST": Role.EDITOR}

    async def post(self, request: Request, ons_id: str) -> Any:
        context = context_of(self.app)
        who = current_person()
        ref = context.register.constituency(ons_id)
        if ref is None:
            return answer(404, f"no constituency {ons_id}")
        try:
            body = await _json_body(request)
            note = _text_field(body, "note") or ""
        except _Refused as refused:
            return _refusal(refused)
        hold = body.get("hold")
        if not isinstance(hold, bool):
            return answer(422, 'say "hold": true to hold the call, false to let it go')
        action = DeskAction(
            action="override",
            by=who.name,
            at=dt.datetime.now(dt.UTC),
            constituency_id=ref.ons_id,
            detail=(note or "call held") if hold else "call let go",
        )
        trail = worker_audit_trail(self.app)
        try:
            async with trail.acting(
                AuditAction.OVERRIDE,
                who,
                ref.ons_id,
                after={"call": "held" if hold else "let go", "note": note},
            ) as done:
                changed = await context.holds.hold_call(ref.ons_id, action, hold)
                done.after = {
                    "call": "held" if hold else "let go",
                    "note": note,
                    "changed": changed,
                }
        except AuditNotWritten:
            log.exception("call override of %s by %s not taken", ref.ons_id, who.name)
            return answer(503, NOT_RECORDED)
        log.warning("desk: call of %s %s by %s", ref.ons_id, action.detail, who.name)
        return aiohttp_web.json_response(
            {"constituency_id": ref.ons_id, "hold": hold, "changed": changed}
        )


ROUTES: dict[str, type[GuardedView]] = {
    DESK_PREFIX + "declarations": DeclarationsView,
    DESK_PREFIX + "seats/{ons_id}/sources": SeatSourcesView,
    DESK_PREFIX + "seats/{ons_id}/call": SeatCallView,
    DESK_PREFIX + "seats/{ons_id}/choose": ChooseSourceView,
    DESK_PREFIX + "queue": DeskQueueView,
    DESK_PREFIX + "events": DeskEventsView,
    DESK_PREFIX + "alerts/{alert_id}/{verb}": AlertDecisionView,
}
