"""The tallies in Redis: each declaration applied atomically by Lua, a batch per round trip."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult, StateOfParties
from streams.reference import Register
from streams.tally import SEQUENCE, seat_contribution, seat_result, state_of_parties

# One declaration, all or nothing. The offset check makes a redelivery after a crash a no-op;
# the revision check makes duplicates and stale revisions no-ops; an applied revision takes
# out the seat's old contribution and adds the new, and logs the change for the publisher.
# Outcome counters live here too, so they are exact even across crashes.
_APPLY = """
local seat_key, totals_key, offsets_key, changes_key, seats_key, counters_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local offset_field, offset = ARGV[1], tonumber(ARGV[2])
local revision, content_hash, kind = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ons_id, declared_at = ARGV[8], ARGV[9]

local function outcome(name, seq)
  redis.call('HINCRBY', counters_key, 'tally:' .. name, 1)
  return {name, seq}
end

local last = redis.call('HGET', offsets_key, offset_field)
if last and tonumber(last) >= offset then
  return outcome('redelivered', 0)
end
redis.call('HSET', offsets_key, offset_field, offset)

local current = redis.call('HMGET', seat_key, 'revision', 'content_hash', 'contribution', 'result')
if current[1] then
  local current_revision = tonumber(current[1])
  if current_revision > revision then return outcome('superseded', 0) end
  if current_revision == revision then
    if current[2] == content_hash then return outcome('duplicate', 0) end
    return outcome('conflict', 0)
  end
end

local old = {}
if current[3] then old = cjson.decode(current[3]) end
local new = old
if kind ~= 'recount' then new = cjson.decode(ARGV[6]) end
for field, value in pairs(old) do redis.call('HINCRBY', totals_key, field, -value) end
for field, value in pairs(new) do redis.call('HINCRBY', totals_key, field, value) end
local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)

local result
if kind == 'recount' and current[4] then
  -- The figures announced before stand, marked, until the recount's result replaces them.
  local seat = cjson.decode(current[4])
  seat.recount = true
  seat.kind = 'recount'
  seat.revision = revision
  seat.declared_at = declared_at
  seat.sequence = seq
  result = cjson.encode(seat)
else
  result = string.gsub(ARGV[7], '"sequence":0,', '"sequence":' .. seq .. ',', 1)
end
local encoded_new = '{}'
if next(new) ~= nil then encoded_new = cjson.encode(new) end
redis.call('HSET', seat_key, 'revision', revision, 'content_hash', content_hash, 'kind', kind,
  'contribution', encoded_new, 'result', result)
redis.call('SADD', seats_key, ons_id)

local flat = redis.call('HGETALL', totals_key)
local totals = {}
for i = 1, #flat, 2 do totals[flat[i]] = tonumber(flat[i + 1]) end
redis.call('XADD', changes_key, seq .. '-0', 'seat', ons_id, 'result', result,
  'previous', current[4] or '', 'totals', cjson.encode(totals))
return outcome('applied', seq)
"""

_EXIT_POLL = """
local exit_poll_key, totals_key, offsets_key, changes_key, counters_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local offset_field, offset = ARGV[1], tonumber(ARGV[2])
local last = redis.call('HGET', offsets_key, offset_field)
if last and tonumber(last) >= offset then
  redis.call('HINCRBY', counters_key, 'tally:exit_poll_redelivered', 1)
  return {'redelivered', 0}
end
redis.call('HSET', offsets_key, offset_field, offset)
if redis.call('EXISTS', exit_poll_key) == 1 then
  redis.call('HINCRBY', counters_key, 'tally:exit_poll_duplicate', 1)
  return {'duplicate', 0}
end
redis.call('SET', exit_poll_key, ARGV[3])
local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)
redis.call('XADD', changes_key, seq .. '-0', 'exit_poll', ARGV[3])
redis.call('HINCRBY', counters_key, 'tally:exit_poll_applied', 1)
return {'applied', seq}
"""


@dataclass(frozen=True)
class PendingApply:
    """An accepted declaration and where it was read, so a redelivery is recognised."""

    declaration: Declaration
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class ApplyOutcome:
    outcome: str  # applied | duplicate | superseded | conflict | redelivered
    sequence: int | None
    constituency_id: str
    revision: int


@dataclass(frozen=True)
class Change:
    """One entry of the change log: an applied revision (or the exit poll), in order."""

    sequence: int
    result: SeatResult | None
    previous: SeatResult | None
    totals: dict[str, int]
    exit_poll: ExitPoll | None = None


def content_hash(declaration: Declaration) -> str:
    return hashlib.sha256(declaration.model_dump_json().encode()).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TallyStore:
    """One election's tallies; every key starts with `{key_prefix}election:{election_id}:`."""

    def __init__(self, redis: Redis, election_id: str, key_prefix: str = "") -> None:
        self.redis = redis
        self.election_id = election_id
        self.ns = f"{key_prefix}election:{election_id}:"
        self._apply = redis.register_script(_APPLY)
        self._exit_poll = redis.register_script(_EXIT_POLL)

    def key(self, name: str) -> str:
        return self.ns + name

    def _seat_args(self, item: PendingApply, register: Register) -> tuple[list[str], list[Any]]:
        declaration = item.declaration
        ref = register.constituencies[declaration.constituency_id]
        # A recount notice keeps the old contribution; Lua has it, so nothing is sent.
        contribution = (
            {}
            if declaration.kind is DeclarationKind.RECOUNT
            else seat_contribution(declaration, ref, None)
        )
        result = seat_result(declaration, ref, 0)
        keys = [
            self.key(f"seat:{declaration.constituency_id}"),
            self.key("totals"),
            self.key("offsets"),
            self.key("changes"),
            self.key("seats"),
            self.key("counters"),
        ]
        args = [
            f"{item.topic}:{item.partition}",
            item.offset,
            declaration.revision,
            content_hash(declaration),
            declaration.kind.value,
            orjson.dumps(contribution),
            result.model_dump_json(),
            declaration.constituency_id,
            declaration.declared_at.isoformat(),
        ]
        return keys, args

    async def apply_batch(
        self, items: Sequence[PendingApply], register: Register
    ) -> list[ApplyOutcome]:
        """Apply a batch in one round trip; each declaration is its own atomic step."""
        if not items:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                keys, args = self._seat_args(item, register)
                await self._apply(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        return [
            ApplyOutcome(
                outcome=_text(reply[0]),
                sequence=int(reply[1]) or None,
                constituency_id=item.declaration.constituency_id,
                revision=item.declaration.revision,
            )
            for item, reply in zip(items, replies, strict=True)
        ]

    async def record_exit_poll(
        self, exit_poll: ExitPoll, topic: str, partition: int, offset: int
    ) -> str:
        """Log the exit poll once per election; returns applied, duplicate or redelivered."""
        reply = await self._exit_poll(
            keys=[
                self.key("exit-poll"),
                self.key("totals"),
                self.key("offsets"),
                self.key("changes"),
                self.key("counters"),
            ],
            args=[f"{topic}:{partition}", offset, exit_poll.model_dump_json()],
        )
        return _text(reply[0])

    async def totals(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.key("totals"))  # type: ignore[misc]
        return {_text(k): int(v) for k, v in raw.items()}

    async def state(self, register: Register) -> StateOfParties:
        totals = await self.totals()
        sequence = totals.pop(SEQUENCE, 0)
        latest = await self.changes_before(sequence + 1, 1)
        as_of = last_seat = None
        if latest and latest[0].result is not None:
            as_of = latest[0].result.declared_at
            last_seat = latest[0].result.constituency_id
        return state_of_parties(totals, register, sequence, as_of, last_seat)

    async def seat(self, ons_id: str) -> SeatResult | None:
        raw = await self.redis.hget(self.key(f"seat:{ons_id}"), "result")  # type: ignore[misc]
        return SeatResult.model_validate_json(raw) if raw else None

    async def seats(self) -> dict[str, SeatResult]:
        members = await self.redis.smembers(self.key("seats"))  # type: ignore[misc]
        ons_ids = sorted(_text(m) for m in members)
        if not ons_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for ons_id in ons_ids:
                pipe.hget(self.key(f"seat:{ons_id}"), "result")
            raws = await pipe.execute()
        return {
            ons_id: SeatResult.model_validate_json(raw)
            for ons_id, raw in zip(ons_ids, raws, strict=True)
            if raw
        }

    async def changes(self, after: int, count: int = 500) -> list[Change]:
        entries: Any = await self.redis.xrange(self.key("changes"), min=f"({after}-0", count=count)
        return [_change(entry_id, fields) for entry_id, fields in entries]

    async def changes_before(self, before: int, count: int) -> list[Change]:
        entries: Any = await self.redis.xrevrange(
            self.key("changes"), max=f"({before}-0", count=count
        )
        return [_change(entry_id, fields) for entry_id, fields in entries]

    async def change(self, sequence: int) -> Change | None:
        entries: Any = await self.redis.xrange(
            self.key("changes"), min=f"{sequence}-0", max=f"{sequence}-0"
        )
        return _change(*entries[0]) if entries else None

    async def reset(self) -> int:
        """Delete this election's keys only; returns how many were removed."""
        removed = 0
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=self.ns + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += await self.redis.unlink(*batch)
                batch = []
        if batch:
            removed += await self.redis.unlink(*batch)
        return removed


def _change(entry_id: Any, fields: Any) -> Change:
    decoded = {_text(k): v for k, v in fields.items()}
    sequence = int(_text(entry_id).split("-", 1)[0])
    if "exit_poll" in decoded:
        return Change(sequence, None, None, {}, ExitPoll.model_validate_json(decoded["exit_poll"]))
    previous = decoded.get("previous")
    totals = {k: int(v) for k, v in orjson.loads(decoded["totals"]).items()}
    totals.pop(SEQUENCE, None)
    return Change(
        sequence=sequence,
        result=SeatResult.model_validate_json(decoded["result"]),
        previous=SeatResult.model_validate_json(previous) if previous else None,
        totals=totals,
    )
