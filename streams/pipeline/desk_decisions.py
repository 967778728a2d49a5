"""Decisions on held alerts, on the record: an editor's (approve, edit, kill) or the clock's."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from schemas.alert import Alert
from schemas.audit import AuditAction, AuditStage, Role
from schemas.desk import DeskAction, HeldAlert
from streams.pipeline.audit import AuditTrail, worker_audit_trail
from streams.pipeline.context import ElectionApp
from streams.rules.desk import Person
from streams.store.holds import DeskHolds
from streams.store.keys import DESK_RELEASER_LOCK
from streams.store.lease import Lease

log = logging.getLogger(__name__)

# The clock on the record: who a timed release is by.
AUTO_RELEASE = Person("auto-release", Role.EDITOR)
RELEASE_TICK_S = 1.0
RELEASER_TTL_MS = 10_000


class DecisionRefused(Exception):
    """A decision not taken: the HTTP status, a short error and what to tell the person."""

    def __init__(self, status: int, error: str, detail: str, earlier: DeskAction | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.earlier = status, error, detail, earlier


@dataclass(frozen=True)
class Edits:
    headline: str | None = None
    body: str | None = None

    @property
    def any(self) -> bool:
        return self.headline is not None or self.body is not None


def sent_as(held: HeldAlert, edits: Edits) -> Alert:
    """The alert as it goes out: as made, or with the editor's headline and body, checked
    as any alert is (a headline of 1 to 140 characters)."""
    if not edits.any:
        return held.alert
    changed = held.alert.model_dump(mode="json")
    if edits.headline is not None:
        changed["headline"] = edits.headline
    if edits.body is not None:
        changed["body"] = edits.body
    try:
        return Alert.model_validate(changed)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise DecisionRefused(422, "invalid_edit", problems) from error


async def decide(
    holds: DeskHolds,
    trail: AuditTrail,
    who: Person,
    alert_id: str,
    verb: Literal["approve", "kill", "auto_release"],
    edits: Edits = Edits(),
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> DeskAction:
    """Take one decision on a held alert: on the audit topic first, then in Redis, at most
    once whoever else decides at the same moment; DecisionRefused if it was not taken.
    AuditNotWritten (nothing done) if the intent could not be put on the record."""
    held = await holds.one_held(alert_id)
    if held is None:
        earlier = await holds.decision_on(alert_id)
        if earlier is not None:
            raise DecisionRefused(
                409, "already_decided", f"{earlier.action} by {earlier.by}", earlier
            )
        raise DecisionRefused(404, "not_held", f"no alert {alert_id} is held on the desk")
    kill = verb == "kill"
    sent = None if kill else sent_as(held, edits)
    audit_action = {
        "kill": AuditAction.KILL,
        "auto_release": AuditAction.AUTO_RELEASE,
        "approve": AuditAction.EDIT if edits.any else AuditAction.APPROVE,
    }[verb]
    action = DeskAction(
        action=audit_action.value,
        by=who.name,
        at=now or dt.datetime.now(dt.UTC),
        alert_id=alert_id,
        headline=(sent or held.alert).headline,
        original_headline=held.alert.headline if edits.any else None,
        constituency_id=held.alert.constituency_id,
        detail=reason,
    )
    before = {"held": held.model_dump(mode="json")}
    after: dict[str, Any] = (
        {"killed": True, "reason": reason}
        if sent is None
        else {"alert": sent.model_dump(mode="json")}
    )
    intended = await trail.intend(audit_action, who, alert_id, before, after)
    try:
        decided = await holds.decide(action, kill, sent)
    except Exception as error:
        await trail.settle(intended, AuditStage.FAILED, detail=f"{type(error).__name__}: {error}")
        raise
    if not decided.taken:
        earlier = decided.earlier
        detail = f"decided first: {earlier.action} by {earlier.by}" if earlier else "no longer held"
        await trail.settle(intended, AuditStage.REFUSED, detail=detail)
        raise DecisionRefused(409 if earlier else 404, "already_decided", detail, earlier)
    await trail.settle(
        intended, AuditStage.DONE, after={**after, "outbox_sequence": decided.sequence}
    )
    log.warning(
        "desk: %s of alert %s (%s) by %s", action.action, alert_id, action.headline, who.name
    )
    return action


async def release_due(holds: DeskHolds, trail: AuditTrail, now: dt.datetime) -> int:
    """Send every held alert whose time on the desk ran out; returns how many went."""
    released = 0
    for held in await holds.held():
        if held.release_at is None or held.release_at > now:
            continue
        try:
            await decide(holds, trail, AUTO_RELEASE, held.alert.alert_id, "auto_release", now=now)
        except DecisionRefused:
            continue  # an editor got there first
        released += 1
    return released


def register(app: ElectionApp) -> None:
    """Release held alerts whose time ran out, from one worker at a time (a lease)."""
    lease: Lease | None = None

    @app.timer(interval=RELEASE_TICK_S, name="streams.desk.release_due")
    async def release_held_alerts() -> None:
        nonlocal lease
        context = app.context
        if lease is None:
            lease = Lease(context.redis, context.namespace + DESK_RELEASER_LOCK, RELEASER_TTL_MS)
        try:
            if not await lease.acquire():
                return
            await release_due(context.holds, worker_audit_trail(app), dt.datetime.now(dt.UTC))
        except Exception:
            # An exception would end this timer for good; the next tick tries again.
            log.exception("desk: releasing held alerts failed; trying again")
