"""The tallies in Redis: each declaration applied atomically by Lua, a batch per round trip."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult, StateOfParties
from streams.redis_keys import election_namespace
from streams.reference import ReferenceDataError, Register, cached_register
from streams.settings import get_settings
from streams.tally import SEQUENCE, seat_contribution, seat_result, state_of_parties

# Key names inside an election's namespace (streams.redis_keys.election_namespace).
# + ONS id: hash revision, kind, content_hash, contribution, result, recount, applied_offset
SEAT = "seat:"
SEATS = "seats"  # set of ONS ids with a seat hash, so reading every seat needs no SCAN
TOTALS = "totals"  # hash of flat integer counters (none at 0), and meta:sequence
OFFSETS = "offsets"  # hash topic:partition -> last offset applied
CHANGES = "changes"  # stream, entry id {sequence}-0, read by the publisher
EXIT_POLL = "exit-poll"  # string: the election's exit poll JSON, once
COUNTERS = "counters"  # hash stage:outcome -> count (streams.counters.COUNTERS_KEY)

# The stored result JSON is spliced, never decoded, by Lua: Redis's cjson would round
# floats to 14 digits and turn an empty list into {}. The splice relies on this order.
_SPLICE_FIELDS = ["sequence", "figures_pending", "recount", "winning_party"]
_FIELDS = list(SeatResult.model_fields)
assert _FIELDS[_FIELDS.index("sequence") :][:4] == _SPLICE_FIELDS, "SeatResult field order"
_SEQUENCE_PLACEHOLDER = '"sequence":0,'

# One declaration, all or nothing. The offset check makes a redelivery after a crash a no-op;
# the revision check makes duplicates and stale revisions no-ops; an applied revision takes
# out the seat's old contribution, adds the new, and logs the change for the publisher.
# Outcome counters live here too, so they are exact even across crashes. Redis keeps the
# writes of a script that fails halfway, so everything that can fail (decoding, splicing)
# comes before the first write: a failed step records nothing, not even its offset, and
# its redelivery is applied. A batch's later steps still run after a failed one, so each
# names the offset of the step before it on its partition (ARGV[10], '' for the first): if
# that one did not record its offset, this one is held back, else its offset would mark
# the failed one as already applied and the redelivery would skip it.
#
# KEYS: seat, totals, offsets, changes, seats, counters
# ARGV: topic:partition, offset, revision, content hash, kind, contribution JSON,
#       result JSON before its sequence value, result JSON after it, ONS id,
#       offset of the batch's step before this one on the same partition, or ''
_APPLY = """
local seat_key, totals_key, offsets_key, changes_key, seats_key, counters_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local offset_field, offset = ARGV[1], tonumber(ARGV[2])
local revision, content_hash, kind = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local head, tail, ons_id, after = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local function outcome(name, seq)
  redis.call('HINCRBY', counters_key, 'tally:' .. name, 1)
  return {name, seq}
end

local last = redis.call('HGET', offsets_key, offset_field)
if after ~= '' and not (last and tonumber(last) >= tonumber(after)) then
  return redis.error_reply('held back: offset ' .. after .. ' of ' .. offset_field ..
    ' before it in the batch was not applied')
end
if last and tonumber(last) >= offset then
  return outcome('redelivered', 0)
end

local current = redis.call('HMGET', seat_key, 'revision', 'content_hash', 'contribution', 'result')
if current[1] then
  local current_revision = tonumber(current[1])
  local name
  if current_revision > revision then name = 'superseded'
  elseif current_revision == revision and current[2] == content_hash then name = 'duplicate'
  elseif current_revision == revision then name = 'conflict' end
  if name then
    redis.call('HSET', offsets_key, offset_field, offset)
    return outcome(name, 0)
  end
end

local old = {}
if current[3] then old = cjson.decode(current[3]) end
local new = old
local encoded_new = current[3] or '{}'
if kind ~= 'recount' then
  new = cjson.decode(ARGV[6])
  encoded_new = ARGV[6]
end

local previous = current[4]
if kind == 'recount' and previous then
  -- The figures announced before stand, marked, until the recount's result replaces them:
  -- this notice's header (ids, kind, revision, time, sequence), then the previous result
  -- from figures_pending on, with recount set.
  local pending_at = string.find(previous, ',"figures_pending":', 1, true)
  local recount_at = pending_at and string.find(previous, ',"recount":', pending_at, true)
  local winning_at = recount_at and string.find(previous, ',"winning_party":', recount_at, true)
  if not winning_at then
    return redis.error_reply('stored result of ' .. ons_id .. ' cannot be marked for a recount')
  end
  tail = string.sub(previous, pending_at, recount_at - 1) .. ',"recount":true' ..
    string.sub(previous, winning_at)
end

redis.call('HSET', offsets_key, offset_field, offset)
-- The net change per counter, so a counter no seat contributes to is removed, not left at
-- 0: the totals are then exactly the sum of the seats' contributions, however reached.
local delta = {}
for field, value in pairs(old) do delta[field] = -value end
for field, value in pairs(new) do delta[field] = (delta[field] or 0) + value end
for field, change in pairs(delta) do
  if change ~= 0 and redis.call('HINCRBY', totals_key, field, change) == 0 then
    redis.call('HDEL', totals_key, field)
  end
end
local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)
local result = head .. seq .. tail
local recount = '0'
if kind == 'recount' then recount = '1' end
redis.call('HSET', seat_key, 'revision', revision, 'content_hash', content_hash, 'kind', kind,
  'contribution', encoded_new, 'result', result, 'recount', recount,
  'applied_offset', offset_field .. ':' .. ARGV[2])
redis.call('SADD', seats_key, ons_id)

local flat = redis.call('HGETALL', totals_key)
local totals = {}
for i = 1, #flat, 2 do totals[flat[i]] = tonumber(flat[i + 1]) end
redis.call('XADD', changes_key, seq .. '-0', 'seat', ons_id, 'result', result,
  'previous', previous or '', 'totals', cjson.encode(totals))
return outcome('applied', seq)
"""

# The exit poll, once per election. KEYS: exit poll, totals, offsets, changes, counters.
# ARGV: topic:partition, offset, exit poll JSON.
_EXIT_POLL = """
local exit_poll_key, totals_key, offsets_key, changes_key, counters_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local offset_field, offset = ARGV[1], tonumber(ARGV[2])
local function outcome(name, seq)
  redis.call('HINCRBY', counters_key, 'tally:exit_poll_' .. name, 1)
  return {name, seq}
end
local last = redis.call('HGET', offsets_key, offset_field)
if last and tonumber(last) >= offset then return outcome('redelivered', 0) end
redis.call('HSET', offsets_key, offset_field, offset)
if redis.call('EXISTS', exit_poll_key) == 1 then return outcome('duplicate', 0) end
redis.call('SET', exit_poll_key, ARGV[3])
local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)
redis.call('XADD', changes_key, seq .. '-0', 'exit_poll', ARGV[3])
return outcome('applied', seq)
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
    sequence: int | None  # the change's sequence when applied
    constituency_id: str
    revision: int


@dataclass(frozen=True)
class ExitPollOutcome:
    outcome: str  # applied | duplicate | redelivered
    sequence: int | None


@dataclass(frozen=True)
class Change:
    """One entry of the change log: an applied revision (or the exit poll), in order."""

    sequence: int
    result: SeatResult | None
    previous: SeatResult | None
    totals: dict[str, int]  # after the change, without meta:sequence; {} for the exit poll
    exit_poll: ExitPoll | None = None


def content_hash(declaration: Declaration) -> str:
    """What a revision announces; two feeds relaying the same revision are duplicates.

    Hashed from the parsed model, so key order and spacing in the bytes do not count, and
    without `source`, which says who relayed it, not what was declared.
    """
    announced = declaration.model_dump_json(exclude={"source"})
    return hashlib.sha256(announced.encode()).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split_result(result: SeatResult) -> tuple[str, str]:
    """The result JSON around its sequence value, for Lua to put the real sequence in."""
    assert result.sequence == 0
    encoded = result.model_dump_json()
    at = encoded.index(_SEQUENCE_PLACEHOLDER) + len(_SEQUENCE_PLACEHOLDER) - 2
    return encoded[:at], encoded[at + 1 :]


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class TallyStoreError(RuntimeError):
    """Redis refused a step; nothing after it in the batch is known to be applied."""


class TallyStore:
    """One election's tallies; every key starts with the election's namespace (redis_keys).

    `register` is the election's reference data; without one, the reference data of the
    settings' data_dir is used, provided it is of the same election.
    """

    def __init__(
        self,
        redis: Redis,
        election_id: str,
        key_prefix: str = "",
        register: Register | None = None,
    ) -> None:
        self.redis = redis
        self.election_id = election_id
        self.ns = election_namespace(key_prefix, election_id)
        self.register = register
        self._apply_sha = hashlib.sha1(_APPLY.encode()).hexdigest()

    def key(self, name: str) -> str:
        return self.ns + name

    def _register(self, register: Register | None) -> Register:
        chosen = register or self.register
        if chosen is None:
            chosen = cached_register(get_settings().data_dir)
        if chosen.election_id != self.election_id:
            # Never tally one election's declarations against another's seats.
            raise ReferenceDataError(
                f"reference data of {chosen.election_id}, store of {self.election_id}"
            )
        return chosen

    def _seat_args(
        self, item: PendingApply, register: Register, after: int | None
    ) -> tuple[list[str], list[Any]]:
        declaration = item.declaration
        ref = register.constituencies[declaration.constituency_id]
        # A recount notice keeps the old contribution, which only Lua has: nothing is sent.
        contribution = (
            {}
            if declaration.kind is DeclarationKind.RECOUNT
            else seat_contribution(declaration, ref, None)
        )
        head, tail = _split_result(seat_result(declaration, ref, 0))
        keys = [
            self.key(SEAT + declaration.constituency_id),
            self.key(TOTALS),
            self.key(OFFSETS),
            self.key(CHANGES),
            self.key(SEATS),
            self.key(COUNTERS),
        ]
        args = [
            f"{item.topic}:{item.partition}",
            item.offset,
            declaration.revision,
            content_hash(declaration),
            declaration.kind.value,
            orjson.dumps(contribution),
            head,
            tail,
            declaration.constituency_id,
            "" if after is None else after,
        ]
        return keys, args

    async def apply_batch(
        self, items: Sequence[PendingApply], register: Register | None = None
    ) -> list[ApplyOutcome]:
        """Apply a batch in one round trip; each declaration is its own atomic Lua step.

        The pipeline starts with SCRIPT LOAD, so EVALSHA never meets NOSCRIPT after a Redis
        restart and no SCRIPT EXISTS round trip is needed. If Redis refuses a step, this
        raises: the steps after it on the same partition are held back unapplied, so when the
        batch is redelivered the offset check skips exactly what was applied. Items of one
        topic-partition must come in offset order, as Kafka delivers them.
        """
        if not items:
            return []
        chosen = self._register(register)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.script_load(_APPLY)
            last_offsets: dict[tuple[str, int], int] = {}
            for item in items:
                partition = (item.topic, item.partition)
                keys, args = self._seat_args(item, chosen, last_offsets.get(partition))
                last_offsets[partition] = item.offset
                pipe.evalsha(self._apply_sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            raise TallyStoreError(f"{len(errors)} of {len(items)} steps failed") from errors[0]
        return [
            ApplyOutcome(
                outcome=_text(reply[0]),
                sequence=int(reply[1]) or None,
                constituency_id=item.declaration.constituency_id,
                revision=item.declaration.revision,
            )
            for item, reply in zip(items, replies[1:], strict=True)
        ]

    async def record_exit_poll(
        self, exit_poll: ExitPoll, topic: str, partition: int, offset: int
    ) -> ExitPollOutcome:
        """Log the exit poll once per election: applied, then duplicate; or redelivered."""
        keys = [
            self.key(EXIT_POLL),
            self.key(TOTALS),
            self.key(OFFSETS),
            self.key(CHANGES),
            self.key(COUNTERS),
        ]
        args: list[str | int] = [f"{topic}:{partition}", offset, exit_poll.model_dump_json()]
        # Once a night: EVAL with the script's text costs nothing and never meets NOSCRIPT.
        reply: Any = await self.redis.eval(_EXIT_POLL, len(keys), *keys, *args)  # type: ignore[misc]
        return ExitPollOutcome(_text(reply[0]), int(reply[1]) or None)

    async def exit_poll(self) -> ExitPoll | None:
        raw = await self.redis.get(self.key(EXIT_POLL))
        return ExitPoll.model_validate_json(raw) if raw else None

    async def totals(self) -> dict[str, int]:
        """The flat counters, with meta:sequence."""
        raw = await self.redis.hgetall(self.key(TOTALS))  # type: ignore[misc]
        return {_text(k): int(v) for k, v in raw.items()}

    async def state(self, register: Register | None = None) -> StateOfParties:
        """The state of the parties now, from one consistent read (MULTI) of totals and log."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(TOTALS))
            # The latest two: one of them is a seat's, since the exit poll comes only once.
            pipe.xrevrange(self.key(CHANGES), count=2)
            raw, latest = await pipe.execute()
        totals = {_text(k): int(v) for k, v in raw.items()}
        sequence = totals.pop(SEQUENCE, 0)
        as_of = last_seat = None
        for entry_id, fields in latest:
            change = _change(entry_id, fields)
            if change.result is not None:
                as_of, last_seat = change.result.declared_at, change.result.constituency_id
                break
        return state_of_parties(totals, self._register(register), sequence, as_of, last_seat)

    async def seat(self, ons_id: str) -> SeatResult | None:
        raw = await self.redis.hget(self.key(SEAT + ons_id), "result")  # type: ignore[misc]
        return SeatResult.model_validate_json(raw) if raw else None

    async def seats(self) -> dict[str, SeatResult]:
        """Every seat with an applied revision (a set of ids, then one pipelined read)."""
        members = await self.redis.smembers(self.key(SEATS))  # type: ignore[misc]
        ons_ids = sorted(_text(m) for m in members)
        if not ons_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for ons_id in ons_ids:
                pipe.hget(self.key(SEAT + ons_id), "result")
            raws = await pipe.execute()
        return {
            ons_id: SeatResult.model_validate_json(raw)
            for ons_id, raw in zip(ons_ids, raws, strict=True)
            if raw
        }

    async def changes(self, after: int, count: int = 500) -> list[Change]:
        """Up to `count` changes with a sequence above `after`, in order."""
        entries: Any = await self.redis.xrange(self.key(CHANGES), min=f"({after}-0", count=count)
        return [_change(entry_id, fields) for entry_id, fields in entries]

    async def changes_before(self, before: int, count: int) -> list[Change]:
        """Up to `count` changes with a sequence below `before`, newest first."""
        entries: Any = await self.redis.xrevrange(
            self.key(CHANGES), max=f"({before}-0", count=count
        )
        return [_change(entry_id, fields) for entry_id, fields in entries]

    async def change(self, sequence: int) -> Change | None:
        entries: Any = await self.redis.xrange(
            self.key(CHANGES), min=f"{sequence}-0", max=f"{sequence}-0"
        )
        return _change(*entries[0]) if entries else None

    async def reset(self) -> int:
        """Delete this election's keys only (outbox included); returns how many were removed."""
        removed = 0
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=_glob_escape(self.ns) + "*", count=1000):
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


__all__ = [
    "ApplyOutcome",
    "Change",
    "ExitPollOutcome",
    "PendingApply",
    "TallyStore",
    "TallyStoreError",
    "content_hash",
]
