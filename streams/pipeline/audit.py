"""The audit trail: every state-changing action on the audit topic, its intent before it acts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from faust.types import AppT

from schemas.audit import AuditAction, AuditRecord, AuditStage
from streams.pipeline.context import ElectionApp, context_of
from streams.pipeline.topics import send_acknowledged
from streams.rules.desk import Person

log = logging.getLogger(__name__)

# Sends one record (key, value) and returns once Kafka has it on every in-sync copy.
Send = Callable[[bytes, bytes], Awaitable[Any]]
# A record not acknowledged by then is taken as not written: a person waits on the answer,
# and the producer's own timeouts run to minutes while a broker is away.
WRITE_TIMEOUT_S = 15.0


class AuditNotWritten(RuntimeError):
    """Kafka did not acknowledge an audit record (in time): an intended action is not taken."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Outcome:
    """What an action on the record became, set by the action for its `done` record."""

    after: dict[str, Any] | None = None


class AuditTrail:
    """Writes one election's audit records, each acknowledged before the call returns.

    Write-ahead: `intend` puts an `intended` record on Kafka before the action takes effect,
    `settle` its outcome after, under the same action id. A worker that dies in between
    leaves the intent with no outcome: never an action nobody can see.
    """

    def __init__(
        self,
        send: Send,
        election_id: str,
        rehearsal: bool,
        now: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._send = send
        self.election_id = election_id
        self.rehearsal = rehearsal
        self._now = now

    async def _write(self, record: AuditRecord) -> AuditRecord:
        try:
            await asyncio.wait_for(
                self._send(record.action_id.encode(), record.model_dump_json().encode()),
                WRITE_TIMEOUT_S,
            )
        except Exception as error:
            raise AuditNotWritten(
                f"audit record {record.action_id} ({record.stage}) is not on Kafka: {error!r}"
            ) from error
        return record

    def _record(
        self,
        stage: AuditStage,
        action: AuditAction,
        who: Person,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        detail: str | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            election_id=self.election_id,
            rehearsal=self.rehearsal,
            action_id=uuid.uuid4().hex,
            stage=stage,
            action=action,
            who=who.name,
            role=who.role,
            at=self._now(),
            target=target,
            before=before,
            after=after,
            detail=detail,
        )

    async def intend(
        self,
        action: AuditAction,
        who: Person,
        target: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Record an action about to be taken; it must not be taken if this raises."""
        return await self._write(
            self._record(AuditStage.INTENDED, action, who, target, before, after)
        )

    async def settle(
        self,
        intended: AuditRecord,
        stage: AuditStage,
        after: dict[str, Any] | None = None,
        detail: str | None = None,
    ) -> AuditRecord | None:
        """Record how an intended action ended (`after`: what it became, else as intended).

        Never raises: the action has happened, or failed, whatever Kafka says now. An outcome
        Kafka does not take is logged and left out (None), and its intent stays on record
        without one, as when a worker dies mid-action.
        """
        try:
            return await self._write(
                intended.model_copy(
                    update={
                        "stage": stage,
                        "at": self._now(),
                        "after": after if after is not None else intended.after,
                        "detail": detail,
                    }
                )
            )
        except AuditNotWritten:
            log.exception("the outcome of audit action %s was not recorded", intended.action_id)
            return None

    async def refuse(
        self,
        action: AuditAction,
        who: Person,
        target: str,
        detail: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Record an action asked for and turned down before anything changed."""
        return await self._write(
            self._record(AuditStage.REFUSED, action, who, target, before, after, detail)
        )

    @contextlib.asynccontextmanager
    async def acting(
        self,
        action: AuditAction,
        who: Person,
        target: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AsyncIterator[Outcome]:
        """`async with trail.acting(...) as outcome:` the intent is on Kafka before the body
        runs (AuditNotWritten, and the body does not run, if not), then `done` with what the
        body set in `outcome.after`, or `failed` if it raised."""
        intended = await self.intend(action, who, target, before, after)
        outcome = Outcome()
        try:
            yield outcome
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"
            await self.settle(intended, AuditStage.FAILED, detail=failure)
            raise
        await self.settle(intended, AuditStage.DONE, after=outcome.after)


def worker_audit_trail(app: AppT) -> AuditTrail:
    """A worker's trail: its app's producer (acks=all) to the audit topic, in its mode."""
    settings = context_of(app).settings  # a TypeError for an app create_app did not make
    topic = cast(ElectionApp, app).night_topics.audit

    async def send(key: bytes, value: bytes) -> Any:
        return await send_acknowledged(topic, key, value)

    return AuditTrail(send, settings.election_id, settings.mode == "rehearsal")
