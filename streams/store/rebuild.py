"""Rebuild an election's Redis state from the Kafka log when Redis has lost it."""

# Why this is safe: the tallies are a function of the declarations log. Validation is a
# function of the message and the election's reference data, and each step records its Kafka
# offset and the seat's revision in the same Lua call, so re-validating and re-applying the
# log from the start gives the same seats, totals and counters whatever the partitions'
# interleaving.
#
# How a loss is told apart from a fresh start: the state carries a marker key, written once
# when a worker first finds no state and its consumer group has committed nothing on the
# declarations topic (a fresh night), by a rebuild, or by `election-reset`. No marker while the
# group has committed offsets means Redis lost what it held: the state is wiped (a retried
# pipeline may have written into the empty Redis), re-applied from the log up to its end,
# and the outputs already on Kafka are recorded as sent, so no alert is pushed twice.
#
# While a rebuild runs, the publisher's announced cursor is held out of reach, so no
# publisher queues outputs of a half-built change log; the marker comes last.

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from streams.connections import kafka_client_options
from streams.rules.backoff import backoff_delay
from streams.rules.reference import Register
from streams.rules.validation import FeedPosition, NightWindow, kafka_time, validate_message
from streams.settings import Settings
from streams.store.keys import DESK_KEPT, OFFSETS, REBUILD_LOCK, STATE_MARKER
from streams.store.lease import Lease
from streams.store.outbox import (
    OUTBOX_EPOCH_HEADER,
    OUTBOX_SEQ_HEADER,
    Outbox,
    Output,
    QueuedOutput,
    conflict_output_id,
    result_output_id,
)
from streams.store.tally_store import PendingStep, StepOutcome, TallyStore, step_of

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_TTL_MS = 30_000
APPLY_CHUNK = 500
READ_STALL_S = 30.0
# Redis is restarting or unreachable: wait and try the same batch again, never skip it.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,  # BusyLoadingError (still loading its files) included
    redis_errors.TimeoutError,
)
RETRY_FIRST_S = 0.2
SETTLE_S = 1.0
RETRY_MAX_S = 5.0


@dataclass
class RebuildReport:
    """What a rebuild read and wrote, and how long it took."""

    messages: int = 0
    partitions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    already_sent: Counter[str] = field(default_factory=Counter)  # output ids found on Kafka
    seconds: float = 0.0

    def summary(self, election_id: str, topic: str) -> str:
        outcomes = ", ".join(f"{n} {name}" for name, n in sorted(self.outcomes.items()))
        sent = ", ".join(f"{n} {name}" for name, n in sorted(self.already_sent.items()))
        return (
            f"rebuilt {election_id} from {self.messages} messages of {topic} "
            f"({self.partitions} partitions) in {self.seconds:.2f}s: {outcomes or 'nothing'}; "
            f"already on Kafka, not sent again: {sent or 'nothing'}"
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


async def state_present(redis: Redis, namespace: str) -> bool:
    """True when the election's state is whole: its marker is there."""
    return bool(await redis.exists(namespace + STATE_MARKER))


async def state_origin(redis: Redis, namespace: str) -> dict[str, Any] | None:
    """How the election's state began (the marker, see mark_state); None without a marker."""
    raw = await redis.get(namespace + STATE_MARKER)
    return orjson.loads(raw) if raw else None


async def mark_state(redis: Redis, namespace: str, how: str, **details: Any) -> None:
    """Write the marker: `how` is fresh, rebuilt or reset."""
    await redis.set(namespace + STATE_MARKER, orjson.dumps({"how": how, "at": _now(), **details}))


async def reset_election(store: TallyStore) -> int:
    """Remove every key of the store's election; returns how many were removed.

    Leaves a "reset" marker: a wanted empty state, so workers carry on from their offsets
    instead of rebuilding it from Kafka. The marker is ours, so it is not counted.
    """
    had_marker = await state_present(store.redis, store.ns)
    removed = await store.reset()
    await mark_state(store.redis, store.ns, "reset")
    return removed - had_marker


@contextlib.asynccontextmanager
async def _kafka_admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_options(settings)
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def group_has_committed(settings: Settings) -> bool:
    """Whether the worker's consumer group committed any offset on the declarations topic."""
    async with _kafka_admin(settings) as admin:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    return any(
        tp.topic == settings.topic_declarations and meta.offset >= 0 for tp, meta in offsets.items()
    )


class RebuildError(RuntimeError):
    """The state could not be rebuilt (yet); nothing may be applied until it is."""


def consumed_before(first_offsets: dict[str, int]) -> bool:
    """The batch about to be applied starts past the first message of one of its partitions
    (retention keeps the whole night: the log starts at 0)."""
    return any(first > 0 for first in first_offsets.values())


def _lost_writes(marker: bytes, recorded: list[Any], first_offsets: dict[str, int]) -> bool:
    """A batch starts past the offset Redis last recorded on its partition: Redis lost steps
    Kafka already counts as done (a restart from an append-only file a second behind)."""
    how = orjson.loads(marker).get("how")
    for (name, first), last in zip(first_offsets.items(), recorded, strict=True):
        if last is None:
            # After a reset the state starts empty at the group's offsets; otherwise the
            # first message of a partition Redis never saw must be the log's first.
            if how != "reset" and first > 0:
                log.warning("no offset recorded for %s, whose batch starts at %d", name, first)
                return True
        elif int(last) < first - 1:
            log.warning("%s: Redis recorded offset %s, the batch starts at %d", name, last, first)
            return True
    return False


async def ensure_state(
    store: TallyStore,
    settings: Settings,
    register: Register,
    first_offsets: dict[str, int] | None = None,
) -> None:
    """Return once the election's state is whole, rebuilding it from Kafka if it was lost.

    `first_offsets` ("topic:partition" -> first offset of the batch about to be applied)
    also catches a partial loss: Redis back from its files but missing its last writes.
    """
    redis, ns = store.redis, store.ns
    fields = list(first_offsets or {})
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(ns + STATE_MARKER)
        if fields:
            pipe.hmget(ns + OFFSETS, fields)
        replies = await pipe.execute()
    marker = replies[0]
    if marker is not None:
        if fields and _lost_writes(marker, replies[1], first_offsets or {}):
            try:
                await rebuild_now(store, settings, register)
            except REDIS_UNAVAILABLE:
                raise
            except Exception as error:
                raise RebuildError(f"{type(error).__name__}: {error}") from error
        return
    try:
        # Faust commits every few seconds: a worker can consume half a night, lose Redis and
        # find nothing committed. A batch starting past a partition's first message says what
        # the commits do not yet: the messages before it were applied, and are lost.
        if not consumed_before(first_offsets or {}) and not await group_has_committed(settings):
            # Nothing was ever consumed by this group: a fresh night, nothing to rebuild.
            await redis.set(
                ns + STATE_MARKER, orjson.dumps({"how": "fresh", "at": _now()}), nx=True
            )
            return
        await _rebuild_once(store, settings, register)
    except REDIS_UNAVAILABLE:
        raise
    except Exception as error:
        raise RebuildError(f"{type(error).__name__}: {error}") from error


def _rebuild_lease(store: TallyStore) -> Lease:
    return Lease(store.redis, store.ns + REBUILD_LOCK, LOCK_TTL_MS)


async def _rebuild_once(
    store: TallyStore, settings: Settings, register: Register
) -> RebuildReport | None:
    """Rebuild unless another worker already is (then wait for its marker: None)."""
    redis, ns = store.redis, store.ns
    log.warning("the state of %s is missing from Redis: rebuilding it from Kafka", ns)
    lease = _rebuild_lease(store)
    while not await state_present(redis, ns):
        if await lease.acquire():
            try:
                # A batch another worker checked just before the marker went may still land:
                # let it, so the wipe takes it away and the log puts it back.
                await asyncio.sleep(SETTLE_S)
                report = await rebuild(store, settings, register, lease)
            finally:
                await lease.release()
            log.warning("%s", report.summary(settings.election_id, settings.topic_declarations))
            return report
        await asyncio.sleep(0.2)  # another worker is rebuilding; its marker ends the wait
    return None


async def rebuild_now(
    store: TallyStore, settings: Settings, register: Register
) -> RebuildReport | None:
    """Rebuild in a running worker (the admin endpoint): dropping the marker first makes
    every worker's tally agent hold its batches until the state is whole again."""
    await store.redis.delete(store.ns + STATE_MARKER)
    return await _rebuild_once(store, settings, register)


async def with_state(
    store: TallyStore,
    settings: Settings,
    register: Register,
    step: Callable[[], Awaitable[T]],
    what: str,
    first_offsets: dict[str, int] | None = None,
) -> T:
    """Run `step` on a whole state; while Redis is unreachable, wait and run it again.

    A step that failed half way is safe to repeat: each declaration's offset check makes the
    part already applied a no-op.
    """
    failures = 0
    while True:
        failures += 1
        delay = backoff_delay(failures, RETRY_FIRST_S, RETRY_MAX_S, random.random())
        try:
            await ensure_state(store, settings, register, first_offsets)
            return await step()
        except REDIS_UNAVAILABLE as error:
            log.warning("%s: Redis unavailable (%s); retrying in %.1fs", what, error, delay)
        except RebuildError:
            # Kafka unreachable mid-rebuild, say: the next attempt starts the rebuild again.
            log.exception("%s: rebuilding the state failed; retrying in %.1fs", what, delay)
        await asyncio.sleep(delay)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **kafka_client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The partitions of `topic` as the brokers list them now; none while it does not exist.

    Every topic is asked for, as a consumer's own metadata refresh does: a request naming the
    topic would have a broker that creates topics on demand create it.
    """
    async with _kafka_admin(settings) as admin:
        described = await admin.describe_topics()
    for entry in described:
        # A topic the brokers report with an error (not yet led, say) has no partitions to
        # read, as a consumer's metadata would have it.
        if entry["topic"] == topic and entry["error_code"] == 0:
            return sorted(partition["partition"] for partition in entry["partitions"])
    return []


async def read_log(
    settings: Settings, topic: str
) -> AsyncIterator[tuple[int, list[ConsumerRecord[bytes, bytes]]]]:
    """Every message of `topic` up to its end now, a partition's run at a time, in order.

    Yields (number of partitions, records). The end is taken once, at the start: what arrives
    later is the live consumers' business. The partitions come from the brokers, not from a
    fresh consumer's metadata, which may not list the topic yet.
    """
    tps = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
    if not tps:
        return
    consumer = _consumer(settings)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        stalled_since = time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=APPLY_CHUNK)
            if batch:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > READ_STALL_S:
                raise RuntimeError(
                    f"reading {topic} stalled for {READ_STALL_S:.0f}s before its end"
                )
            for tp, records in batch.items():
                within = [r for r in records if r.offset < end[tp]]
                if within:
                    yield len(tps), within
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


# Validating a run yields to the event loop this often, so the run Redis is applying goes on
# reaching it (a run's script is about a megabyte, more than one write of the socket takes).
YIELD_EVERY = 50


async def _steps_of(
    records: list[ConsumerRecord[bytes, bytes]],
    settings: Settings,
    register: Register,
    window: NightWindow,
) -> list[PendingStep]:
    """What each record asks of the store, validated as the worker that first read it did."""
    steps: list[PendingStep] = []
    for at, record in enumerate(records, start=1):
        where = (record.topic, record.partition, record.offset)
        key = record.key if isinstance(record.key, bytes) else None
        # Each record's own timestamp, as the worker that first read it used: a declaration
        # sent ahead of its time then is refused again now, however long ago it was sent.
        sent_at = kafka_time(record.timestamp / 1000)
        # Rejected messages were dead-lettered when first consumed: only counted again.
        position = FeedPosition(*where, key, sent_at)
        verdict = validate_message(
            record.value or b"",
            position,
            register,
            window=window,
            max_bytes=settings.max_message_bytes,
            mode=settings.mode,
        )
        steps.append(step_of(verdict, position))
        if at % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return steps


async def _apply_log(store: TallyStore, settings: Settings, register: Register) -> RebuildReport:
    """Re-apply the declarations log, each run validated and made into the apply script's
    arguments while Redis applies the run before: one run in flight at a time, so every
    partition's steps still reach Redis in order."""
    report = RebuildReport()
    window = settings.night_window()
    applying: asyncio.Task[list[StepOutcome]] | None = None

    def count(outcomes: list[StepOutcome]) -> None:
        for outcome in outcomes:
            report.outcomes[outcome.outcome] += 1

    try:
        async for partitions, records in read_log(settings, settings.topic_declarations):
            report.partitions = partitions
            report.messages += len(records)
            prepared = store.prepare_steps(
                await _steps_of(records, settings, register, window),
                register,
                max_revision_jump=settings.max_revision_jump,
                source_precedence=settings.source_precedence,
            )
            if applying is not None:
                count(await applying)
            applying = asyncio.create_task(store.apply_prepared(prepared))
        if applying is not None:
            count(await applying)
    finally:
        if applying is not None and not applying.done():
            # Reading or validating failed: the rebuild fails, and its next attempt wipes
            # whatever this run managed to apply.
            applying.cancel()
            await asyncio.gather(applying, return_exceptions=True)
    return report


def _value_of(record: ConsumerRecord[bytes, bytes], election_id: str) -> dict[str, Any] | None:
    """A record's JSON if it is an output of this election (the topics may be shared)."""
    try:
        value = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("election_id") != election_id:
        return None
    return value


def _output_id(topic: str, value: dict[str, Any]) -> str | None:
    """The publisher's dedupe id of an output (streams.pipeline.publisher): `alert:<alert id>`
    (on the alerts topic, or the newsroom's for an alert for the newsroom alone),
    `result:<ons id>:<source>:<revision>`, `state:<sequence>` or `conflict...:<ons id>:<id>`;
    None for anything else on the topic."""
    if topic == "alerts" and "alert_id" in value:
        return f"alert:{value['alert_id']}"
    if topic == "newsroom" and value.get("message_type") == "alert":
        return f"alert:{value['alert_id']}"
    if topic == "results" and "constituency_id" in value:
        return result_output_id(value["constituency_id"], value.get("source"), value["revision"])
    if topic == "newsroom" and value.get("message_type") == "source_conflict":
        return conflict_output_id(
            value["constituency_id"], value["conflict_id"], value.get("resolution") is not None
        )
    if topic == "state" and value.get("message_type") == "state_of_parties":
        return f"state:{int(value.get('sequence', 0))}"
    return None


@dataclass(frozen=True)
class SentOutput:
    """An output found on Kafka, with the outbox epoch and sequence it was published under."""

    epoch: str
    sent_at_ms: int
    queued: QueuedOutput


@dataclass(frozen=True)
class OutputsOnKafka:
    """What one output topic already holds of this election, each record read once.

    `ids` are the publisher's output ids, never to be queued again. Snapshots are
    `state:<sequence>`: a rebuilt change log numbers its changes anew, so every sequence up to
    the highest on Kafka counts as sent and only snapshots beyond it are published. `sent` are
    the outputs that name their outbox sequence, for the outbox's history.
    """

    ids: list[str]
    sent: list[SentOutput]


def outputs_on_kafka(
    topic: str, records: list[ConsumerRecord[bytes, bytes]], election_id: str
) -> OutputsOnKafka:
    """This election's outputs already on one output topic."""
    ids: list[str] = []
    sent: list[SentOutput] = []
    highest_state = 0
    for record in records:
        value = _value_of(record, election_id)
        output_id = _output_id(topic, value) if value is not None else None
        if output_id is None or value is None:
            continue
        if topic == "state":
            highest_state = max(highest_state, int(value.get("sequence", 0)))
        else:
            ids.append(output_id)
        headers = {name: raw.decode(errors="replace") for name, raw in record.headers or ()}
        sequence = headers.get(OUTBOX_SEQ_HEADER, "")
        if not sequence.isdigit() or int(sequence) < 1:
            continue
        key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else ""
        output = Output(output_id, topic, key, record.value or b"")
        sent.append(
            SentOutput(
                headers.get(OUTBOX_EPOCH_HEADER, ""),
                record.timestamp,
                QueuedOutput(int(sequence), output),
            )
        )
    ids += [f"state:{n}" for n in range(1, highest_state + 1)]
    return OutputsOnKafka(ids, sent)


def history_to_restore(found: list[SentOutput]) -> tuple[str, list[QueuedOutput]]:
    """The latest outbox epoch on Kafka and its outputs, once each, in sequence order.

    The latest, by when it reached Kafka: an earlier epoch belongs to a night reset since,
    whose sequences its clients no longer resume from. A sequence sent twice (a publisher
    that died between sending and marking it sent) is the same output both times.
    """
    if not found:
        return "", []
    epoch = max(found, key=lambda sent: sent.sent_at_ms).epoch
    by_sequence: dict[int, QueuedOutput] = {}
    for sent in found:
        if sent.epoch == epoch:
            by_sequence.setdefault(sent.queued.sequence, sent.queued)
    return epoch, [by_sequence[n] for n in sorted(by_sequence)]


async def _restore_sent(outbox: Outbox, settings: Settings) -> Counter[str]:
    """Record every output on Kafka as sent, and put the latest epoch's back in the outbox."""
    sent: Counter[str] = Counter()
    found: list[SentOutput] = []
    for name, topic in settings.output_topics().items():
        records: list[ConsumerRecord[bytes, bytes]] = []
        async for _, run in read_log(settings, topic):
            records += run
        on_kafka = outputs_on_kafka(name, records, settings.election_id)
        sent[name] = len(on_kafka.ids)
        await outbox.count_as_sent(on_kafka.ids)
        found += on_kafka.sent
    await outbox.restore(*history_to_restore(found))
    return sent


async def rebuild(
    store: TallyStore, settings: Settings, register: Register, lease: Lease | None = None
) -> RebuildReport:
    """Wipe the election's state and re-make it from the declarations topic; the caller holds
    the rebuild `lease` (None: this call takes it, failing if someone holds it)."""
    redis, ns = store.redis, store.ns
    own_lease = lease is None
    lease = lease or _rebuild_lease(store)
    if own_lease and not await lease.acquire():
        raise RuntimeError(f"another rebuild of {ns} is under way ({lease.key} is held)")
    began = time.monotonic()
    outbox = Outbox(redis, ns)
    try:
        async with lease.kept():
            # The desk's holds and decisions are no function of the log: kept as they are.
            await store.reset(keep={lease.key, *(ns + name for name in DESK_KEPT)})
            await outbox.hold_announcing()
            # The tallies come from the declarations and the outbox from the output topics: the
            # two are made side by side, each one's waits on Kafka and Redis the other's turn.
            # If one fails, the other is stopped and the first error is the rebuild's.
            applying = asyncio.create_task(_apply_log(store, settings, register))
            restoring = asyncio.create_task(_restore_sent(outbox, settings))
            try:
                await asyncio.gather(applying, restoring)
            finally:
                for task in (applying, restoring):
                    task.cancel()
                await asyncio.gather(applying, restoring, return_exceptions=True)
            report = applying.result()
            report.already_sent = restoring.result()
            report.seconds = time.monotonic() - began
            async with redis.pipeline(transaction=True) as pipe:
                outbox.resume_announcing(pipe)
                pipe.set(
                    ns + STATE_MARKER,
                    orjson.dumps(
                        {
                            "how": "rebuilt",
                            "at": _now(),
                            "messages": report.messages,
                            "seconds": round(report.seconds, 3),
                        }
                    ),
                )
                await pipe.execute()
        return report
    finally:
        if own_lease:
            await lease.release()


__all__ = [
    "OutputsOnKafka",
    "RebuildError",
    "RebuildReport",
    "ensure_state",
    "group_has_committed",
    "history_to_restore",
    "mark_state",
    "outputs_on_kafka",
    "read_log",
    "rebuild",
    "rebuild_now",
    "state_origin",
    "state_present",
    "with_state",
]
