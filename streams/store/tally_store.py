"""The tallies in Redis: each declaration applied atomically by Lua, a batch per round trip."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult, StateOfParties
from streams.rules.event_time import (
    EventKey,
    PartitionProgress,
    event_key,
    key_from_text,
    key_text,
    key_time,
)
from streams.rules.reference import ReferenceDataError, Register
from streams.rules.tally import (
    SEQUENCE,
    contribution_delta,
    seat_contribution,
    seat_result,
    state_of_parties,
)
from streams.rules.validation import FeedPosition, Rejected, Verdict
from streams.store.keys import election_namespace

# Key names inside an election's namespace (streams.store.keys.election_namespace).
# + ONS id: hash revision, kind, content_hash, contribution, result, recount, applied_offset
SEAT = "seat:"
SEATS = "seats"  # set of ONS ids with a seat hash, so reading every seat needs no SCAN
TOTALS = "totals"  # hash of flat integer counters (none at 0), and meta:sequence
OFFSETS = "offsets"  # hash topic:partition -> last offset applied
CLOCKS = "clocks"  # hash topic:partition -> event key (text) of the last timed message applied
ENDS = "ends"  # hash topic:partition -> "log end as the worker's consumer knew it|sequence"
AS_OF = "as-of"  # string: the latest declaration time applied, ms since the epoch
CHANGES = "changes"  # stream, entry id {sequence}-0, read by the publisher
EXIT_POLL = "exit-poll"  # string: the election's exit poll JSON, once
COUNTERS = "counters"  # hash stage:outcome -> count

# The stored result JSON is spliced, never decoded, by Lua: Redis's cjson would round
# floats to 14 digits and turn an empty list into {}. The splice relies on this order.
_SPLICE_FIELDS = ["sequence", "figures_pending", "recount", "winning_party"]
_FIELDS = list(SeatResult.model_fields)
assert _FIELDS[_FIELDS.index("sequence") :][:4] == _SPLICE_FIELDS, "SeatResult field order"
_SEQUENCE_PLACEHOLDER = '"sequence":0,'

# A batch of consumed messages in one script, in the order Kafka delivered them; each
# message is its own all-or-nothing step. The offset check makes a redelivery after a crash
# a no-op; the revision check makes duplicates and stale revisions no-ops; an applied
# revision takes out the seat's old contribution, adds the new, and logs the change (with
# both contributions, so the publisher follows the totals without reading them all) for the
# publisher. Outcome counters, validation's included, live here too, so every offset is
# counted exactly once, across crashes. Redis keeps the writes of a script that fails
# halfway, so everything in a step that can fail (decoding, splicing) comes before its first
# write and a failure is returned, not raised: the failed step records nothing, not even its
# offset, and the later steps of its partition are held back (else their offsets would mark
# the failed one as applied and its redelivery would be skipped); other partitions go on.
#
# KEYS: the namespace's totals (Redis Cluster routing; every key shares its hash tag).
# ARGV: namespace, the number N of log ends, N pairs (topic:partition, log end as the worker's
# consumer last saw it, from the fetches that brought this batch or later), then FIELDS values
# per message:
#   'd' (declaration): topic:partition, offset, revision, content hash, kind, contribution
#       JSON, result JSON before its sequence value, result JSON after it, ONS id, event key,
#       Kafka timestamp in ms
#   'e' (exit poll): topic:partition, offset, exit poll JSON, unused, event key, Kafka timestamp
#   'r' (rejected): topic:partition, offset, reason, then unused
# The event key (streams.rules.event_time.key_text, starting with the time in ms) is the
# partition's clock once the message is recorded: the publisher's watermark reads it.
# Returns name, sequence (or error text) per message.
_FIELDS_PER_STEP = 12
_APPLY = """
local ns = ARGV[1]
local FIELDS = FIELDS_PER_STEP
local totals_key, offsets_key, changes_key = ns .. 'totals', ns .. 'offsets', ns .. 'changes'
local seats_key, counters_key, exit_poll_key = ns .. 'seats', ns .. 'counters', ns .. 'exit-poll'
local clocks_key, as_of_key = ns .. 'clocks', ns .. 'as-of'
local replies = {}
local last_of, held = {}, {}

local function count(name)
  redis.call('HINCRBY', counters_key, name, 1)
end

local function record(field, offset, clock)
  redis.call('HSET', offsets_key, field, offset)
  if clock ~= '' then redis.call('HSET', clocks_key, field, clock) end
  last_of[field] = offset
end

local function declaration(i, field, offset)
  local revision, content_hash, kind = tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5]
  local head, tail, ons_id, clock = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
  local seat_key = ns .. 'seat:' .. ons_id
  local current = redis.call('HMGET', seat_key,
    'revision', 'content_hash', 'contribution', 'result')
  if current[1] then
    local current_revision = tonumber(current[1])
    local name
    if current_revision > revision then name = 'superseded'
    elseif current_revision == revision and current[2] == content_hash then name = 'duplicate'
    elseif current_revision == revision then name = 'conflict' end
    if name then
      record(field, offset, clock)
      count('validation:accepted')
      count('tally:' .. name)
      return name, 0
    end
  end

  local old_text = current[3] or '{}'
  local new_text = old_text
  if kind ~= 'recount' then new_text = ARGV[i + 6] end
  local decoded_old, old = pcall(cjson.decode, old_text)
  local decoded_new, new = pcall(cjson.decode, new_text)
  if not (decoded_old and decoded_new) then
    return nil, 'contribution of ' .. ons_id .. ' cannot be read'
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
      return nil, 'stored result of ' .. ons_id .. ' cannot be marked for a recount'
    end
    tail = string.sub(previous, pending_at, recount_at - 1) .. ',"recount":true' ..
      string.sub(previous, winning_at)
  end

  record(field, offset, clock)
  -- The "as of" time only moves forward: a correction dated earlier leaves it where it is.
  local at = tonumber(string.match(clock, '^%d+'))
  if at > tonumber(redis.call('GET', as_of_key) or '-1') then
    redis.call('SET', as_of_key, at)
  end
  -- The net change per counter, so a counter no seat contributes to is removed, not left at
  -- 0: the totals are then exactly the sum of the seats' contributions, however reached.
  local delta = {}
  for name, value in pairs(old) do delta[name] = -value end
  for name, value in pairs(new) do delta[name] = (delta[name] or 0) + value end
  for name, change in pairs(delta) do
    if change ~= 0 and redis.call('HINCRBY', totals_key, name, change) == 0 then
      redis.call('HDEL', totals_key, name)
    end
  end
  local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)
  local result = head .. seq .. tail
  local recount = '0'
  if kind == 'recount' then recount = '1' end
  redis.call('HSET', seat_key, 'revision', revision, 'content_hash', content_hash, 'kind', kind,
    'contribution', new_text, 'result', result, 'recount', recount,
    'applied_offset', field .. ':' .. ARGV[i + 2])
  redis.call('SADD', seats_key, ons_id)
  redis.call('XADD', changes_key, seq .. '-0', 'seat', ons_id, 'result', result,
    'previous', previous or '', 'old', old_text, 'new', new_text, 'sent', ARGV[i + 11])
  count('validation:accepted')
  count('tally:applied')
  return 'applied', seq
end

local function exit_poll(i, field, offset)
  record(field, offset, ARGV[i + 10])
  count('validation:accepted')
  if redis.call('EXISTS', exit_poll_key) == 1 then
    count('tally:exit_poll_duplicate')
    return 'exit_poll_duplicate', 0
  end
  redis.call('SET', exit_poll_key, ARGV[i + 3])
  local seq = redis.call('HINCRBY', totals_key, 'meta:sequence', 1)
  redis.call('XADD', changes_key, seq .. '-0', 'exit_poll', ARGV[i + 3], 'sent', ARGV[i + 11])
  count('tally:exit_poll_applied')
  return 'exit_poll_applied', seq
end

local function rejected(i, field, offset)
  record(field, offset, '')
  count('validation:rejected:' .. ARGV[i + 3])
  return 'rejected', 0
end

local steps = {d = declaration, e = exit_poll, r = rejected}
local ends = tonumber(ARGV[2])
for i = 3 + 2 * ends, #ARGV, FIELDS do
  local field, offset = ARGV[i + 1], tonumber(ARGV[i + 2])
  local name, seq
  if held[field] then
    name, seq = 'error', 'held back: a message before it on ' .. field .. ' was not applied'
  else
    local last = last_of[field]
    if last == nil then
      last = tonumber(redis.call('HGET', offsets_key, field) or '-1')
      last_of[field] = last
    end
    if last >= offset then
      count('kafka:redelivered')
      name, seq = 'redelivered', 0
    else
      local step = steps[ARGV[i]]
      if step == nil then
        name, seq = nil, 'unknown step ' .. tostring(ARGV[i])
      else
        name, seq = step(i, field, offset)
      end
      if name == nil then
        held[field] = true
        name = 'error'
      end
    end
  end
  replies[#replies + 1] = name
  replies[#replies + 1] = seq
end
-- Written after the steps, with the sequence reached: a log end is news about every change
-- up to that sequence (its fetch came after theirs), and about none later.
local reached = redis.call('HGET', totals_key, 'meta:sequence') or '0'
for j = 0, ends - 1 do
  redis.call('HSET', ns .. 'ends', ARGV[3 + 2 * j], ARGV[4 + 2 * j] .. '|' .. reached)
end
return replies
""".replace("FIELDS_PER_STEP", str(_FIELDS_PER_STEP))


@dataclass(frozen=True)
class PendingApply:
    """An accepted declaration and where it was read, so a redelivery is recognised."""

    declaration: Declaration
    topic: str
    partition: int
    offset: int
    sent_ms: int = 0  # the record's Kafka timestamp (0: none): the publisher's watermark reads it


@dataclass(frozen=True)
class PendingExitPoll:
    """The accepted exit poll and where it was read."""

    exit_poll: ExitPoll
    topic: str
    partition: int
    offset: int
    sent_ms: int = 0


@dataclass(frozen=True)
class PendingRejection:
    """A message validation rejected (already dead-lettered): only its offset and reason count."""

    reason: str
    topic: str
    partition: int
    offset: int


PendingStep = PendingApply | PendingExitPoll | PendingRejection


def step_of(verdict: Verdict, position: FeedPosition) -> PendingStep:
    """What a validated message asks of the store: applied, logged once, or only counted."""
    topic, partition, offset = position.topic, position.partition, position.offset
    if isinstance(verdict, Rejected):
        return PendingRejection(verdict.rejection.reason.value, topic, partition, offset)
    sent_ms = round(position.sent_at.timestamp() * 1000) if position.sent_at else 0
    if isinstance(verdict.message, ExitPoll):
        return PendingExitPoll(verdict.message, topic, partition, offset, sent_ms)
    return PendingApply(verdict.message, topic, partition, offset, sent_ms)


@dataclass(frozen=True)
class StepOutcome:
    # applied | duplicate | superseded | conflict | exit_poll_applied | exit_poll_duplicate |
    # rejected | redelivered
    outcome: str
    sequence: int | None  # the change's sequence when applied


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
    """One entry of the change log: an applied revision (or the exit poll), in order.

    `delta` is what the change did to the totals (counter -> net change, none at 0), so a
    reader that knows the totals before it knows them after, without reading them all.
    """

    sequence: int
    result: SeatResult | None
    previous: SeatResult | None
    delta: dict[str, int]
    exit_poll: ExitPoll | None = None
    result_json: bytes = b""  # the stored result exactly, for publishing without re-encoding
    sent_ms: int = 0  # the Kafka timestamp of the message that made it (0: unknown)

    @property
    def key(self) -> EventKey:
        """Where the change stands in the night's own time (streams.rules.event_time)."""
        if self.result is None:
            assert self.exit_poll is not None
            return event_key(self.exit_poll.published_at)
        result = self.result
        return event_key(
            result.declared_at, result.constituency_name, result.constituency_id, result.revision
        )


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
    """A step failed: it and the later steps of its partition are not applied (the rest are)."""


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
            raise ReferenceDataError(f"no reference data given for {self.election_id}")
        if chosen.election_id != self.election_id:
            # Never tally one election's declarations against another's seats.
            raise ReferenceDataError(
                f"reference data of {chosen.election_id}, store of {self.election_id}"
            )
        return chosen

    def _step_args(self, item: PendingStep, register: Register) -> list[Any]:
        """The script's FIELDS values for one message (see _APPLY), unused ones empty."""
        where = f"{item.topic}:{item.partition}"
        if isinstance(item, PendingRejection):
            values: list[Any] = ["r", where, item.offset, item.reason]
        elif isinstance(item, PendingExitPoll):
            poll = item.exit_poll
            values = ["e", where, item.offset, poll.model_dump_json()]
            values += [""] * 6 + [key_text(event_key(poll.published_at)), item.sent_ms]
        else:
            declaration = item.declaration
            ref = register.constituencies[declaration.constituency_id]
            # A recount notice keeps the old contribution, which only Lua has: nothing is sent.
            contribution = (
                {}
                if declaration.kind is DeclarationKind.RECOUNT
                else seat_contribution(declaration, ref, None)
            )
            head, tail = _split_result(seat_result(declaration, ref, 0))
            values = [
                "d",
                where,
                item.offset,
                declaration.revision,
                content_hash(declaration),
                declaration.kind.value,
                orjson.dumps(contribution),
                head,
                tail,
                declaration.constituency_id,
                key_text(
                    event_key(
                        declaration.declared_at,
                        ref.name,
                        declaration.constituency_id,
                        declaration.revision,
                    )
                ),
                item.sent_ms,
            ]
        return values + [""] * (_FIELDS_PER_STEP - len(values))

    async def apply_steps(
        self,
        items: Sequence[PendingStep],
        register: Register | None = None,
        log_ends: Mapping[str, int] | None = None,
    ) -> list[StepOutcome]:
        """Record a batch of consumed messages in one round trip, each its own atomic step.

        Declarations are applied, the exit poll logged once, rejections only counted; every
        offset is counted once, however often Kafka delivers it. The pipeline starts with
        SCRIPT LOAD, so EVALSHA never meets NOSCRIPT after a Redis restart and no SCRIPT
        EXISTS round trip is needed. If a step fails, this raises: the steps after it on the
        same partition are held back unapplied, so when the batch is redelivered the offset
        check skips exactly what was applied. Items of one topic-partition must come in
        offset order, as Kafka delivers them. `log_ends` (topic:partition -> end offset) is
        where each assigned partition's log ended as the consumer last saw it: the publisher's
        watermark reads it.
        """
        if not items:
            return []
        chosen = self._register(register)
        ends = log_ends or {}
        args: list[Any] = [self.ns, len(ends)]
        for where, end in ends.items():
            args += [where, end]
        for item in items:
            args += self._step_args(item, chosen)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.script_load(_APPLY)
            pipe.evalsha(self._apply_sha, 1, self.key(TOTALS), *args)
            _, replies = await pipe.execute()
        # Pairs of (outcome, sequence), or ("error", why) for a step that failed.
        pairs = [
            (_text(name), detail) for name, detail in zip(replies[0::2], replies[1::2], strict=True)
        ]
        errors = [_text(detail) for name, detail in pairs if name == "error"]
        if errors:
            raise TallyStoreError(f"{len(errors)} of {len(items)} steps failed: {errors[0]}")
        return [StepOutcome(name, int(sequence) or None) for name, sequence in pairs]

    async def apply_batch(
        self, items: Sequence[PendingApply], register: Register | None = None
    ) -> list[ApplyOutcome]:
        """Apply a batch of accepted declarations in one round trip (see apply_steps)."""
        outcomes = await self.apply_steps(items, register)
        return [
            ApplyOutcome(
                outcome=outcome.outcome,
                sequence=outcome.sequence,
                constituency_id=item.declaration.constituency_id,
                revision=item.declaration.revision,
            )
            for item, outcome in zip(items, outcomes, strict=True)
        ]

    async def record_exit_poll(
        self, exit_poll: ExitPoll, topic: str, partition: int, offset: int
    ) -> ExitPollOutcome:
        """Log the exit poll once per election: applied, then duplicate; or redelivered."""
        [outcome] = await self.apply_steps([PendingExitPoll(exit_poll, topic, partition, offset)])
        return ExitPollOutcome(outcome.outcome.removeprefix("exit_poll_"), outcome.sequence)

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
            pipe.get(self.key(AS_OF))
            raw, latest, as_of_ms = await pipe.execute()
        totals = {_text(k): int(v) for k, v in raw.items()}
        sequence = totals.pop(SEQUENCE, 0)
        # As of the latest declaration time applied, not the last applied: a correction
        # dated earlier never moves the clock back.
        as_of = key_time((int(as_of_ms), "", "", 0)) if as_of_ms is not None else None
        last_seat = None
        for entry_id, fields in latest:
            change = _change(entry_id, fields)
            if change.result is not None:
                last_seat = change.result.constituency_id
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

    async def partitions_read(self, topic: str) -> tuple[dict[int, PartitionProgress], int]:
        """How far each partition of `topic` has been applied, with its clock and the log end
        its worker last saw, and the last change in the log then, from one consistent read:
        every change those partitions' messages made is in the log up to that sequence."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(OFFSETS))
            pipe.hgetall(self.key(CLOCKS))
            pipe.hget(self.key(TOTALS), SEQUENCE)
            pipe.hgetall(self.key(ENDS))
            offsets, clocks, last, ends = await pipe.execute()
        prefix = topic + ":"
        read: dict[int, PartitionProgress] = {}
        for field, offset in offsets.items():
            name = _text(field)
            if name.startswith(prefix):
                clock = clocks.get(field)
                read[int(name[len(prefix) :])] = PartitionProgress(
                    int(offset), None, key_from_text(_text(clock)) if clock else None
                )
        for field, value in ends.items():
            name = _text(field)
            if name.startswith(prefix):
                end, as_of = _text(value).split("|")
                partition = int(name[len(prefix) :])
                read[partition] = dataclasses.replace(
                    read.get(partition, PartitionProgress(-1, None, None)),
                    end=int(end),
                    end_as_of=int(as_of),
                )
        return read, int(last or 0)

    async def changes(self, after: int, count: int = 500) -> list[Change]:
        """Up to `count` changes with a sequence above `after`, in order."""
        entries: Any = await self.redis.xrange(self.key(CHANGES), min=f"({after}-0", count=count)
        return [_change(entry_id, fields) for entry_id, fields in entries]

    async def changes_at(self, sequences: Sequence[int]) -> list[Change]:
        """The changes of these sequences, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sequence in sequences:
                pipe.xrange(self.key(CHANGES), min=f"{sequence}-0", max=f"{sequence}-0")
            replies = await pipe.execute()
        return [_change(*entries[0]) for entries in replies if entries]

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

    async def counters(self) -> dict[str, int]:
        """Outcome of every consumed message so far, by `stage:outcome`, across all workers."""
        raw: Any = await self.redis.hgetall(self.key(COUNTERS))
        return {_text(key): int(value) for key, value in raw.items()}

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
    sent_ms = int(decoded.get("sent") or 0)
    if "exit_poll" in decoded:
        exit_poll = ExitPoll.model_validate_json(decoded["exit_poll"])
        return Change(sequence, None, None, {}, exit_poll, sent_ms=sent_ms)
    previous = decoded.get("previous")
    result_json = decoded["result"]
    return Change(
        sequence=sequence,
        result=SeatResult.model_validate_json(result_json),
        previous=SeatResult.model_validate_json(previous) if previous else None,
        delta=contribution_delta(orjson.loads(decoded["old"]), orjson.loads(decoded["new"])),
        result_json=result_json if isinstance(result_json, bytes) else result_json.encode(),
        sent_ms=sent_ms,
    )


__all__ = [
    "ApplyOutcome",
    "Change",
    "ExitPollOutcome",
    "PendingApply",
    "PendingExitPoll",
    "PendingRejection",
    "PendingStep",
    "StepOutcome",
    "TallyStore",
    "TallyStoreError",
    "content_hash",
    "step_of",
]
