"""The tallies in Redis: each declaration applied atomically by Lua, a batch per round trip."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Sequence
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
from streams.rules.sources import (
    DEFAULT_SOURCE_PRECEDENCE,
    SourceView,
    precedence_text,
    source_name,
    source_view,
    views_from_json,
)
from streams.rules.tally import (
    SEQUENCE,
    contribution_delta,
    seat_contribution,
    seat_result_json,
    state_of_parties,
)
from streams.rules.validation import DEFAULT_MAX_REVISION_JUMP, FeedPosition, Rejected, Verdict
from streams.store.keys import (
    AS_OF,
    CHANGES,
    CLOCKS,
    COUNTERS,
    EXIT_POLL,
    OFFSETS,
    SEAT,
    SEATS,
    TOTALS,
    election_namespace,
    namespace_pattern,
)
from streams.store.lua_scripts import lua_script
from streams.store.replies import text

# The stored result JSON is spliced, never decoded, by Lua: Redis's cjson would round
# floats to 14 digits and turn an empty list into {}. The splice relies on this order.
_SPLICE_FIELDS = ["sequence", "figures_pending", "recount", "winning_party"]
_FIELDS = list(SeatResult.model_fields)
assert _FIELDS[_FIELDS.index("sequence") :][:4] == _SPLICE_FIELDS, "SeatResult field order"
_SEQUENCE_PLACEHOLDER = b'"sequence":0,'
# The seat hash's field of each source's view (lua/tally_apply.lua writes it): + source name.
VIEW = "view:"

# The apply step (lua/tally_apply.lua, whose header lays out its KEYS and ARGV): the values
# per message, and the keys before the seats' hashes in KEYS, in the script's order.
_APPLY = lua_script("tally_apply")
_FIELDS_PER_STEP = 15
_APPLY_KEYS = [TOTALS, OFFSETS, CHANGES, SEATS, COUNTERS, EXIT_POLL, CLOCKS, AS_OF]


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
class PreparedSteps:
    """A batch of steps as the apply script takes them (TallyStore.prepare_steps)."""

    count: int
    keys: list[str]
    args: list[Any]


@dataclass(frozen=True)
class StepOutcome:
    # applied | outranked | duplicate | superseded | conflict | revision_jump |
    # exit_poll_applied | exit_poll_duplicate | rejected | redelivered
    outcome: str
    sequence: int | None  # the change's sequence when applied or outranked
    current_revision: int | None = None  # the seat's revision, for a revision_jump (0: none)


@dataclass(frozen=True)
class Change:
    """One entry of the change log: an applied revision, an outranked one (a lower source's,
    with no result: the seat's counted figures did not move) or the exit poll, in order.

    `delta` is what the change did to the totals (counter -> net change, none at 0), so a
    reader that knows the totals before it knows them after, without reading them all.
    A declaration's change also says which source sent it, that source's view of the seat
    and every source's view before it (streams.rules.sources), and which source counts.
    """

    sequence: int
    result: SeatResult | None
    previous: SeatResult | None
    delta: dict[str, int]
    exit_poll: ExitPoll | None = None
    result_json: bytes = b""  # the stored result exactly, for publishing without re-encoding
    sent_ms: int = 0  # the Kafka timestamp of the message that made it (0: unknown)
    constituency_id: str | None = None
    view: SourceView | None = None
    views_before: dict[str, SourceView] = dataclasses.field(default_factory=dict)
    counted: str | None = None  # the source whose figures the seat counts after the change

    @property
    def views_after(self) -> dict[str, SourceView]:
        if self.view is None:
            return dict(self.views_before)
        return {**self.views_before, self.view.source: self.view}

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


@dataclass(frozen=True)
class SeatSources:
    """Every source's latest view of a seat, and the one whose figures the seat counts."""

    counted: str | None
    views: dict[str, SourceView]


def content_hash(declaration: Declaration) -> str:
    """What a revision announces; two relays of one source (replay:a, replay:b) sending the
    same revision are duplicates.

    Hashed from the parsed model, so key order and spacing in the bytes do not count, and
    without `source`, which says who relayed it, not what was declared.
    """
    announced = declaration.model_dump_json(exclude={"source"})
    return hashlib.sha256(announced.encode()).hexdigest()


def _split_result(encoded: bytes) -> tuple[bytes, bytes]:
    """A result JSON of sequence 0 around its sequence value, for Lua to put the real one in."""
    at = encoded.index(_SEQUENCE_PLACEHOLDER) + len(_SEQUENCE_PLACEHOLDER) - 2
    return encoded[:at], encoded[at + 1 :]


class TallyStoreError(RuntimeError):
    """A step failed: it and the later steps of its partition are not applied (the rest are)."""


class TallyStore:
    """One election's tallies; every key starts with the election's namespace (keys.py).

    `register` is the election's reference data, used where a call gives none; it must be of
    the same election.
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

    def _step_args(self, item: PendingStep, register: Register, keys: dict[str, int]) -> list[Any]:
        """The script's FIELDS values for one message (see _APPLY), unused ones empty.

        `keys` is the batch's KEYS so far (key -> its index in KEYS, from 1): a declaration's
        seat hash joins them once, however often the batch declares the seat.
        """
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
            head, tail = _split_result(seat_result_json(declaration, ref))
            seat_key = self.key(SEAT + declaration.constituency_id)
            seat_index = keys.setdefault(seat_key, len(keys) + 1)
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
                seat_index,
                source_name(declaration.source),
                source_view(declaration).encode(),
            ]
        return values + [""] * (_FIELDS_PER_STEP - len(values))

    async def apply_steps(
        self,
        items: Sequence[PendingStep],
        register: Register | None = None,
        *,
        max_revision_jump: int = DEFAULT_MAX_REVISION_JUMP,
        source_precedence: Sequence[str] = DEFAULT_SOURCE_PRECEDENCE,
    ) -> list[StepOutcome]:
        """Record a batch of consumed messages in one round trip, each its own atomic step.

        Declarations are applied, the exit poll logged once, rejections only counted; every
        offset is counted once, however often Kafka delivers it. The pipeline starts with
        SCRIPT LOAD, so EVALSHA never meets NOSCRIPT after a Redis restart and no SCRIPT
        EXISTS round trip is needed. If a step fails, this raises: the steps after it on the
        same partition are held back unapplied, so when the batch is redelivered the offset
        check skips exactly what was applied. Items of one topic-partition must come in
        offset order, as Kafka delivers them. A declaration more than `max_revision_jump`
        past its seat's revision is recorded, not applied: `revision_jump`. Revisions are
        judged per source; a seat counts the figures of the first source in
        `source_precedence` that has reported it, and a lower source's revision is kept and
        logged but changes no number: `outranked`.
        """
        prepared = self.prepare_steps(
            items,
            register,
            max_revision_jump=max_revision_jump,
            source_precedence=source_precedence,
        )
        return await self.apply_prepared(prepared)

    def prepare_steps(
        self,
        items: Sequence[PendingStep],
        register: Register | None = None,
        *,
        max_revision_jump: int = DEFAULT_MAX_REVISION_JUMP,
        source_precedence: Sequence[str] = DEFAULT_SOURCE_PRECEDENCE,
    ) -> PreparedSteps:
        """apply_steps' work before its round trip (the script's keys and arguments), for a
        caller that prepares the next batch while Redis applies the last (the rebuild)."""
        if max_revision_jump < 1:
            raise ValueError(f"max_revision_jump must be at least 1, not {max_revision_jump}")
        if not items:
            return PreparedSteps(0, [], [])
        chosen = self._register(register)
        args: list[Any] = [_FIELDS_PER_STEP, max_revision_jump, precedence_text(source_precedence)]
        keys = {self.key(name): at for at, name in enumerate(_APPLY_KEYS, start=1)}
        for item in items:
            args += self._step_args(item, chosen, keys)
        return PreparedSteps(len(items), list(keys), args)

    async def apply_prepared(self, prepared: PreparedSteps) -> list[StepOutcome]:
        """apply_steps' round trip, for steps made by prepare_steps."""
        if not prepared.count:
            return []
        keys = prepared.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.script_load(_APPLY.source)
            pipe.evalsha(_APPLY.sha, len(keys), *keys, *prepared.args)
            _, replies = await pipe.execute()
        # Pairs of (outcome, sequence), ("revision_jump", the seat's revision), or ("error",
        # why) for a step that failed.
        pairs = [
            (text(name), detail) for name, detail in zip(replies[0::2], replies[1::2], strict=True)
        ]
        errors = [text(detail) for name, detail in pairs if name == "error"]
        if errors:
            raise TallyStoreError(f"{len(errors)} of {prepared.count} steps failed: {errors[0]}")
        return [
            StepOutcome(name, None, int(detail))
            if name == "revision_jump"
            else StepOutcome(name, int(detail) or None)
            for name, detail in pairs
        ]

    async def exit_poll(self) -> ExitPoll | None:
        raw = await self.redis.get(self.key(EXIT_POLL))
        return ExitPoll.model_validate_json(raw) if raw else None

    async def totals(self) -> dict[str, int]:
        """The flat counters, with meta:sequence."""
        raw = await self.redis.hgetall(self.key(TOTALS))
        return {text(k): int(v) for k, v in raw.items()}

    async def state(self, register: Register | None = None) -> StateOfParties:
        """The state of the parties now, from one consistent read (MULTI) of totals and log."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(TOTALS))
            # The latest few: the last seat's result is among them unless a lower-ranked
            # source's revisions (which log no result) came after it, as many as that.
            pipe.xrevrange(self.key(CHANGES), count=16)
            pipe.get(self.key(AS_OF))
            raw, latest, as_of_ms = await pipe.execute()
        totals = {text(k): int(v) for k, v in raw.items()}
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
        raw = await self.redis.hget(self.key(SEAT + ons_id), "result")
        return SeatResult.model_validate_json(raw) if raw else None

    async def seat_sources(self, ons_id: str) -> SeatSources:
        """What each source last said of a seat, as the apply step keeps it beside the seat
        (`view:<source>`), and whose figures count (`source`); none before any reported it."""
        raw: Any = await self.redis.hgetall(self.key(SEAT + ons_id))
        fields = {text(name): value for name, value in raw.items()}
        views = {
            name[len(VIEW) :]: SourceView.decode(name[len(VIEW) :], orjson.loads(value))
            for name, value in fields.items()
            if name.startswith(VIEW)
        }
        counted = fields.get("source")
        return SeatSources(text(counted) if counted is not None else None, views)

    async def seats_reported_by_several(self) -> list[str]:
        """ONS ids of the seats more than one source has reported (a set, then one pipelined
        read of each seat's `sources`): where sources can disagree."""
        members = await self.redis.smembers(self.key(SEATS))
        ons_ids = sorted(text(m) for m in members)
        if not ons_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for ons_id in ons_ids:
                pipe.hget(self.key(SEAT + ons_id), "sources")
            raws = await pipe.execute()
        return [
            ons_id
            for ons_id, raw in zip(ons_ids, raws, strict=True)
            if raw and b"," in (raw if isinstance(raw, bytes) else raw.encode())
        ]

    async def seats(self) -> dict[str, SeatResult]:
        """Every seat with an applied revision (a set of ids, then one pipelined read)."""
        members = await self.redis.smembers(self.key(SEATS))
        ons_ids = sorted(text(m) for m in members)
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
        """How far each partition of `topic` has been applied, with its clock, and the last
        change in the log then, from one consistent read:
        every change those partitions' messages made is in the log up to that sequence."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(OFFSETS))
            pipe.hgetall(self.key(CLOCKS))
            pipe.hget(self.key(TOTALS), SEQUENCE)
            offsets, clocks, last = await pipe.execute()
        prefix = topic + ":"
        read: dict[int, PartitionProgress] = {}
        for field, offset in offsets.items():
            name = text(field)
            if name.startswith(prefix):
                clock = clocks.get(field)
                read[int(name[len(prefix) :])] = PartitionProgress(
                    int(offset), None, key_from_text(text(clock)) if clock else None
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

    async def wait_for_change(self, after: int, block_ms: int) -> bool:
        """Block until the change log has an entry past `after`, or `block_ms` passed."""
        reply: Any = await self.redis.xread(
            {self.key(CHANGES): f"{after}-0"}, count=1, block=block_ms
        )
        return bool(reply)

    async def counters(self) -> dict[str, int]:
        """Outcome of every consumed message so far, by `stage:outcome`, across all workers."""
        raw: Any = await self.redis.hgetall(self.key(COUNTERS))
        return {text(key): int(value) for key, value in raw.items()}

    async def seats_tallied(self) -> int:
        """How many seats have an applied revision."""
        return int(await self.redis.scard(self.key(SEATS)))

    async def tallied(self) -> dict[str, int]:
        """How far the state has come, as the audit trail records it before and after a reset
        or rebuild: seats tallied and the last change's sequence."""
        return {"seats_tallied": await self.seats_tallied(), "sequence": await self.sequence()}

    async def sequence(self) -> int:
        """The sequence of the last change logged (0: none yet)."""
        last = await self.redis.hget(self.key(TOTALS), SEQUENCE)
        return int(last or 0)

    async def reset(self, keep: Collection[str] = ()) -> int:
        """Delete this election's keys only (outbox included), but those in `keep`; returns how
        many were removed."""
        removed = 0
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=namespace_pattern(self.ns), count=1000):
            if text(key) not in keep:
                batch.append(key)
            if len(batch) >= 500:
                removed += await self.redis.unlink(*batch)
                batch = []
        if batch:
            removed += await self.redis.unlink(*batch)
        return removed


def _change(entry_id: Any, fields: Any) -> Change:
    decoded = {text(k): v for k, v in fields.items()}
    sequence = int(text(entry_id).split("-", 1)[0])
    sent_ms = int(decoded.get("sent") or 0)
    if "exit_poll" in decoded:
        exit_poll = ExitPoll.model_validate_json(decoded["exit_poll"])
        return Change(sequence, None, None, {}, exit_poll, sent_ms=sent_ms)
    source = text(decoded["source"]) if "source" in decoded else None
    view = (
        SourceView.decode(source, orjson.loads(decoded["view"]))
        if source is not None and "view" in decoded
        else None
    )
    views_before = views_from_json(decoded.get("views") or b"")
    if "result" not in decoded:  # outranked: kept and logged, counting nothing
        return Change(
            sequence,
            None,
            None,
            {},
            sent_ms=sent_ms,
            constituency_id=text(decoded["seat"]),
            view=view,
            views_before=views_before,
            counted=text(decoded["counted"]),
        )
    previous = decoded.get("previous")
    result_json = decoded["result"]
    return Change(
        sequence=sequence,
        result=SeatResult.model_validate_json(result_json),
        previous=SeatResult.model_validate_json(previous) if previous else None,
        delta=contribution_delta(orjson.loads(decoded["old"]), orjson.loads(decoded["new"])),
        result_json=result_json if isinstance(result_json, bytes) else result_json.encode(),
        sent_ms=sent_ms,
        constituency_id=text(decoded["seat"]),
        view=view,
        views_before=views_before,
        counted=source,
    )


__all__ = [
    "Change",
    "PendingApply",
    "PendingExitPoll",
    "PendingRejection",
    "PendingStep",
    "PreparedSteps",
    "StepOutcome",
    "TallyStore",
    "TallyStoreError",
    "content_hash",
    "step_of",
]
