"""The outbox in Redis: outputs (results, snapshots, alerts) queued once, then drained to Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from streams.store.keys import (
    ANNOUNCED,
    ANNOUNCED_IDS,
    DESK_CALLS,
    DESK_DECIDED,
    DESK_HELD,
    DESK_KILLED,
    DESK_SENT,
    DESK_VERSION,
    EPOCH,
    MOMENTS,
    OUTBOX,
    OUTBOX_SEQ,
    PUBLISHED,
    PUBLISHER_LOCK,
)
from streams.store.lease import Lease
from streams.store.lua_scripts import lua_script

# The announce step (lua/outbox_announce.lua, whose header lays out its KEYS and ARGV) and
# the published cursor's forward-only move.
_ANNOUNCE = lua_script("outbox_announce")
_MARK_PUBLISHED = lua_script("outbox_mark_published")
_RESTORE = lua_script("outbox_restore")
# The announce step skips every change at or below the cursor: parked here, it queues nothing.
HOLD_ANNOUNCED = 2**62
# Output ids are recorded as sent this many at a time, so no one command is unbounded.
_SENT_IDS_PER_CALL = 1000
# Every output on Kafka carries its outbox sequence and the outbox's epoch: a new publisher's
# resync reads them to learn what is already sent, and a rebuild to put the outbox back.
OUTBOX_SEQ_HEADER = "outbox-seq"
OUTBOX_EPOCH_HEADER = "outbox-epoch"


@dataclass(frozen=True)
class Output:
    """One message to publish: `output_id` is its dedupe id (an alert id, or result/seat/rev).

    `hold`, for an alert the desk may hold, says what would hold it and for how long
    (hold_text); the announce step puts it on the desk instead of the outbox if so."""

    output_id: str
    topic: str
    key: str
    value: bytes
    hold: str = ""


def hold_text(conditions: Sequence[str], release_after_s: float | None) -> str:
    """An output's `hold` as the announce step reads it (lua/outbox_announce.lua)."""
    if not conditions:
        return ""
    after = "" if release_after_s is None else str(round(release_after_s * 1000))
    return after + "\n" + " ".join(conditions)


def result_output_id(constituency_id: str, source: str | None, revision: int) -> str:
    """A seat result's dedupe id: one per revision of each source, as sources count in turn."""
    if source is None:  # written before results named their source
        return f"result:{constituency_id}:{revision}"
    return f"result:{constituency_id}:{source}:{revision}"


def conflict_output_id(constituency_id: str, conflict_id: str, resolved: bool) -> str:
    """A source conflict's dedupe id, and its resolution's."""
    return f"{'conflict-resolved' if resolved else 'conflict'}:{constituency_id}:{conflict_id}"


@dataclass(frozen=True)
class QueuedOutput:
    sequence: int
    output: Output


@dataclass(frozen=True)
class OutboxProgress:
    """How far the outbox has come: changes announced, outputs queued, outputs on Kafka."""

    announced: int  # every change up to this sequence is queued
    queued: int  # the last outbox sequence given out
    published: int  # every outbox entry up to this sequence is on Kafka


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Outbox:
    """All outbox keys of one election namespace."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.ns = namespace
        self._announce = redis.register_script(_ANNOUNCE.source)
        self._restore = redis.register_script(_RESTORE.source)

    async def announce_many(
        self,
        changes: Sequence[tuple[int, Sequence[Output]]],
        moments: Mapping[str, str] | None = None,
    ) -> tuple[list[QueuedOutput], bool]:
        """Announce several changes, in the order given, and what was told of national moments
        (`moments`: moment -> record, '' to forget one), in one atomic step. Returns what was
        queued, and whether nothing was because a change had been announced already."""
        if not changes and not moments:
            return [], False
        args: list[str | bytes | int] = [len(moments or {})]
        for moment, told in (moments or {}).items():
            args += [moment, told]
        for change_seq, outputs in changes:
            args += [change_seq, len(outputs)]
            for output in outputs:
                args += [output.output_id, output.topic, output.key, output.value, output.hold]
        names = (
            ANNOUNCED,
            MOMENTS,
            ANNOUNCED_IDS,
            OUTBOX_SEQ,
            OUTBOX,
            DESK_HELD,
            DESK_KILLED,
            DESK_CALLS,
            DESK_VERSION,
            DESK_DECIDED,
            DESK_SENT,
        )
        stale, *replies = await self._announce(keys=[self.ns + name for name in names], args=args)
        if int(stale):
            return [], True
        every = [output for _, outputs in changes for output in outputs]
        queued = []
        for reply, output in zip(replies, every, strict=True):
            if isinstance(reply, list):  # queued as the desk sent it: edited, say
                sequence, value = reply
                queued.append(QueuedOutput(int(sequence), replace(output, value=value)))
            elif int(reply) > 0:  # not held (-1) or queued before (0)
                queued.append(QueuedOutput(int(reply), output))
        return queued, bool(int(stale))

    async def announced(self) -> int:
        """The cursor: every change up to it is announced (and maybe some after it)."""
        return int(await self.redis.get(self.ns + ANNOUNCED) or 0)

    async def moments_told(self) -> dict[str, str]:
        """What was told of each national moment (see announce_many)."""
        raw = await self.redis.hgetall(self.ns + MOMENTS)
        return {_decode(k): _decode(v) for k, v in raw.items()}

    async def published(self) -> int:
        return int(await self.redis.get(self.ns + PUBLISHED) or 0)

    async def mark_published(self, sequence: int) -> None:
        # Never move the cursor backwards: a slow old leader must not undo a newer one.
        await self.redis.eval(_MARK_PUBLISHED.source, 1, self.ns + PUBLISHED, sequence)

    async def progress(self) -> OutboxProgress:
        """The announced, queued and published cursors, read together."""
        raw = await self.redis.mget(self.ns + ANNOUNCED, self.ns + OUTBOX_SEQ, self.ns + PUBLISHED)
        announced, queued, published = (int(value or 0) for value in raw)
        return OutboxProgress(announced, queued, published)

    async def hold_announcing(self) -> None:
        """Park the announced cursor out of reach, so no publisher queues anything (while a
        rebuild re-makes the change log the outputs would come from)."""
        await self.redis.set(self.ns + ANNOUNCED, HOLD_ANNOUNCED)

    def resume_announcing(self, pipe: Pipeline) -> None:
        """On `pipe`, the caller's transaction: announcing starts again from the first change."""
        pipe.delete(self.ns + ANNOUNCED)

    async def count_as_sent(self, output_ids: Sequence[str]) -> None:
        """Outputs already on Kafka: never queued again, whichever change comes to tell them."""
        for at in range(0, len(output_ids), _SENT_IDS_PER_CALL):
            chunk = output_ids[at : at + _SENT_IDS_PER_CALL]
            await self.redis.sadd(self.ns + ANNOUNCED_IDS, *chunk)

    async def restore(self, epoch: str, entries: Sequence[QueuedOutput]) -> None:
        """Put back, at their own sequences and under their epoch, outputs found on Kafka
        after a rebuild emptied the outbox: the history screens and apps read, and the ids
        their clients resume from, are the ones they saw before.

        `entries` in ascending sequence, put back a thousand to a script
        (lua/outbox_restore.lua). The cursors come first, in the same script as the first
        entries: no publisher ever finds a restored entry past its published cursor and sends
        it again.
        """
        if not entries:
            return
        newest = entries[-1].sequence
        keys = [self.ns + OUTBOX, self.ns + EPOCH, self.ns + OUTBOX_SEQ, self.ns + PUBLISHED]
        for at in range(0, len(entries), _SENT_IDS_PER_CALL):
            args: list[Any] = [int(at == 0), epoch, newest]
            for item in entries[at : at + _SENT_IDS_PER_CALL]:
                output = item.output
                args += [item.sequence, output.output_id, output.topic, output.key, output.value]
            await self._restore(keys=keys, args=args)

    async def read(self, after: int, count: int = 500) -> list[QueuedOutput]:
        entries: Any = await self.redis.xrange(self.ns + OUTBOX, min=f"({after}-0", count=count)
        return [self._queued(entry_id, fields) for entry_id, fields in entries]

    async def wait_for(
        self, after: int, block_ms: int, count: int = 500, redis: Redis | None = None
    ) -> list[QueuedOutput]:
        """Entries after `after`, blocking up to block_ms for new ones (for live streams)."""
        client = redis or self.redis
        answer: Any = await client.xread(
            {self.ns + OUTBOX: f"{after}-0"}, count=count, block=block_ms
        )
        if not answer:
            return []
        _, entries = answer[0]
        return [self._queued(entry_id, fields) for entry_id, fields in entries]

    @staticmethod
    def _queued(entry_id: Any, fields: Any) -> QueuedOutput:
        decoded = {_decode(k): v for k, v in fields.items()}
        value = decoded["value"]
        return QueuedOutput(
            sequence=int(_decode(entry_id).split("-", 1)[0]),
            output=Output(
                output_id=_decode(decoded["output_id"]),
                topic=_decode(decoded["topic"]),
                key=_decode(decoded["key"]),
                value=value if isinstance(value, bytes) else value.encode(),
            ),
        )

    async def epoch(self) -> str:
        """This outbox's identity: a reset starts a new epoch, so Kafka messages of an earlier
        night (whose sequence numbers restart at 1) are never mistaken for ones already sent."""
        await self.redis.set(self.ns + EPOCH, uuid.uuid4().hex, nx=True)
        return _decode(await self.redis.get(self.ns + EPOCH) or b"")

    def lease(self, token: str, ttl_ms: int) -> Lease:
        """The single-publisher lease of this election, held under `token`."""
        return Lease(self.redis, self.ns + PUBLISHER_LOCK, ttl_ms, token)
