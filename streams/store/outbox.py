"""The outbox in Redis: outputs (results, snapshots, alerts) queued once, then drained to Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

OUTBOX = "outbox"
OUTBOX_SEQ = "outbox:seq"
ANNOUNCED = "publisher:announced"
MOMENTS = "publisher:moments"  # hash: national moment -> the id it was told under, and where
PUBLISHED = "publisher:published"
ANNOUNCED_IDS = "outbox:ids"
LOCK = "publisher:lock"
EPOCH = "outbox:epoch"

# Queues changes' outputs atomically, in the order the changes were logged. The cursor check
# makes a second announcer (or a retry after a crash) a no-op: if any change given is at or
# below the cursor, nothing is written and the reply says so (the caller's memory of the night
# is stale). A change sequence of 0 carries outputs of no change (national moments told as the
# watermark passes them): queued by id only. The id set keeps an alert id from ever being
# queued twice. What was told of each national moment is recorded in the same step, so a
# publisher taking over knows what the alerts topic says. Key names are built from the
# namespace in ARGV[1]; KEYS[1] is the namespace's announced cursor only so that a Redis
# Cluster routes the call to the node of the election's hash slot. ARGV after the namespace:
# the number M of moment records, M pairs (moment, what was told; '' to forget it), then per
# change its sequence, its number of outputs, then output id, topic, key and value of each.
# Returns 1 if nothing was written because the cursor had passed a change (else 0), then each
# output's outbox sequence, 0 for one not queued.
_ANNOUNCE = """
local ns = ARGV[1]
local cursor_key, moments_key = ns .. 'publisher:announced', ns .. 'publisher:moments'
local announced = tonumber(redis.call('GET', cursor_key) or '0')
local moments = tonumber(ARGV[2])
local first = 3 + 2 * moments
local i = first
while i <= #ARGV do
  local change_seq, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if change_seq ~= 0 and change_seq <= announced then return {1} end
  i = i + 2 + count * 4
end
for j = 0, moments - 1 do
  local moment, told = ARGV[3 + 2 * j], ARGV[4 + 2 * j]
  if told == '' then
    redis.call('HDEL', moments_key, moment)
  else
    redis.call('HSET', moments_key, moment, told)
  end
end
local start = announced
local queued = {0}
i = first
while i <= #ARGV do
  local change_seq, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for j = 0, count - 1 do
    local at = i + j * 4
    local n = 0
    if redis.call('SADD', ns .. 'outbox:ids', ARGV[at]) == 1 then
      n = redis.call('INCR', ns .. 'outbox:seq')
      redis.call('XADD', ns .. 'outbox', n .. '-0', 'output_id', ARGV[at], 'topic', ARGV[at + 1],
        'key', ARGV[at + 2], 'value', ARGV[at + 3])
    end
    queued[#queued + 1] = n
  end
  if change_seq > announced then announced = change_seq end
  i = i + count * 4
end
if announced > start then
  redis.call('SET', cursor_key, announced)
end
return queued
"""

# Renew the lock only if we still hold it, so a worker that stalled cannot steal it back.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Output:
    """One message to publish: `output_id` is its dedupe id (an alert id, or result/seat/rev)."""

    output_id: str
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class QueuedOutput:
    sequence: int
    output: Output


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Outbox:
    """All outbox keys of one election namespace."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.ns = namespace
        self._announce = redis.register_script(_ANNOUNCE)
        self._renew = redis.register_script(_RENEW)

    async def announce(self, change_seq: int, outputs: Sequence[Output]) -> int:
        """Queue a change's outputs unless that change was already announced; returns count."""
        queued, _ = await self.announce_many([(change_seq, outputs)])
        return len(queued)

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
        args: list[str | bytes | int] = [self.ns, len(moments or {})]
        for moment, told in (moments or {}).items():
            args += [moment, told]
        for change_seq, outputs in changes:
            args += [change_seq, len(outputs)]
            for output in outputs:
                args += [output.output_id, output.topic, output.key, output.value]
        stale, *replies = await self._announce(keys=[self.ns + ANNOUNCED], args=args)
        if int(stale):
            return [], True
        every = [output for _, outputs in changes for output in outputs]
        queued = [
            QueuedOutput(int(n), output) for n, output in zip(replies, every, strict=True) if int(n)
        ]
        return queued, bool(int(stale))

    async def announced(self) -> int:
        """The cursor: every change up to it is announced (and maybe some after it)."""
        return int(await self.redis.get(self.ns + ANNOUNCED) or 0)

    async def moments_told(self) -> dict[str, str]:
        """What was told of each national moment (see announce_many)."""
        raw = await self.redis.hgetall(self.ns + MOMENTS)  # type: ignore[misc]
        return {_decode(k): _decode(v) for k, v in raw.items()}

    async def published(self) -> int:
        return int(await self.redis.get(self.ns + PUBLISHED) or 0)

    async def mark_published(self, sequence: int) -> None:
        # Never move the cursor backwards: a slow old leader must not undo a newer one.
        await self.redis.eval(
            "local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
            1,
            self.ns + PUBLISHED,
            sequence,
        )

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

    async def acquire_lock(self, token: str, ttl_ms: int) -> bool:
        """Take or keep the single-publisher lock of this election."""
        if await self.redis.set(self.ns + LOCK, token, nx=True, px=ttl_ms):
            return True
        return bool(await self._renew(keys=[self.ns + LOCK], args=[token, ttl_ms]))

    async def release_lock(self, token: str) -> None:
        await self.redis.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
            "return 0",
            1,
            self.ns + LOCK,
            token,
        )
