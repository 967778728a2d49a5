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
import time
import uuid
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
from streams.rules.reference import Register
from streams.rules.validation import FeedPosition, kafka_time, validate_message
from streams.settings import Settings
from streams.store.outbox import ANNOUNCED, ANNOUNCED_IDS
from streams.store.tally_store import OFFSETS, PendingStep, TallyStore, step_of

log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_MARKER = "state:origin"  # JSON: how this state began (fresh, rebuilt, reset) and when
REBUILD_LOCK = "state:rebuild-lock"  # one rebuilder at a time across workers
LOCK_TTL_MS = 30_000
# The announce script skips every change at or below the cursor: parked here, it queues nothing.
HOLD_ANNOUNCED = 2**62
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

_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


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


async def group_has_committed(settings: Settings) -> bool:
    """Whether the worker's consumer group committed any offset on the declarations topic."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_options(settings)
    )
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    return any(
        tp.topic == settings.topic_declarations and meta.offset >= 0 for tp, meta in offsets.items()
    )


class RebuildError(RuntimeError):
    """The state could not be rebuilt (yet); nothing may be applied until it is."""


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
        committed = await group_has_committed(settings)
        if not committed:
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


async def _rebuild_once(
    store: TallyStore, settings: Settings, register: Register
) -> RebuildReport | None:
    """Rebuild unless another worker already is (then wait for its marker: None)."""
    redis, ns = store.redis, store.ns
    log.warning("the state of %s is missing from Redis: rebuilding it from Kafka", ns)
    token = uuid.uuid4().hex
    while not await state_present(redis, ns):
        if await redis.set(ns + REBUILD_LOCK, token, nx=True, px=LOCK_TTL_MS):
            try:
                # A batch another worker checked just before the marker went may still land:
                # let it, so the wipe takes it away and the log puts it back.
                await asyncio.sleep(SETTLE_S)
                report = await rebuild(store, settings, register, token)
            finally:
                await redis.eval(_RELEASE, 1, ns + REBUILD_LOCK, token)  # type: ignore[misc]
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
    delay = RETRY_FIRST_S
    while True:
        try:
            await ensure_state(store, settings, register, first_offsets)
            return await step()
        except REDIS_UNAVAILABLE as error:
            log.warning("%s: Redis unavailable (%s); retrying in %.1fs", what, error, delay)
        except RebuildError:
            # Kafka unreachable mid-rebuild, say: the next attempt starts the rebuild again.
            log.exception("%s: rebuilding the state failed; retrying in %.1fs", what, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


async def until_redis_answers(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `step`, waiting out a Redis restart instead of letting the agent crash."""
    delay = RETRY_FIRST_S
    while True:
        try:
            return await step()
        except REDIS_UNAVAILABLE as error:
            log.warning("%s: Redis unavailable (%s); retrying in %.1fs", what, error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


async def _keep_lock(redis: Redis, key: str, token: str) -> None:
    while True:
        await asyncio.sleep(LOCK_TTL_MS / 3000)
        await redis.eval(_RENEW, 1, key, token, LOCK_TTL_MS)  # type: ignore[misc]


async def _wipe(redis: Redis, namespace: str, keep: str) -> None:
    batch: list[Any] = []
    async for key in redis.scan_iter(match=_glob_escape(namespace) + "*", count=1000):
        if (key.decode() if isinstance(key, bytes) else key) != keep:
            batch.append(key)
        if len(batch) >= 500:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **kafka_client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def read_log(
    settings: Settings, topic: str
) -> AsyncIterator[tuple[int, list[ConsumerRecord[bytes, bytes]]]]:
    """Every message of `topic` up to its end now, a partition's run at a time, in order.

    Yields (number of partitions, records). The end is taken once, at the start: what arrives
    later is the live consumers' business. One consumer per topic: once a consumer has
    partitions assigned, its metadata updates cover only their topics.
    """
    consumer = _consumer(settings)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return
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


async def _apply_log(store: TallyStore, settings: Settings, register: Register) -> RebuildReport:
    report = RebuildReport()
    window = settings.night_window()
    async for partitions, records in read_log(settings, settings.topic_declarations):
        report.partitions = partitions
        steps: list[PendingStep] = []
        for record in records:
            report.messages += 1
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
            )
            steps.append(step_of(verdict, position))
        for outcome in await store.apply_steps(steps, register):
            report.outcomes[outcome.outcome] += 1
    return report


def output_ids_on_kafka(
    topic: str, records: list[ConsumerRecord[bytes, bytes]], election_id: str
) -> list[str]:
    """The publisher's output ids of the messages already on one output topic.

    Results are `result:<ons id>:<revision>` and alerts `alert:<alert id>`. Snapshots are
    `state:<sequence>`: a rebuilt change log numbers its changes anew, so every sequence up
    to the highest on Kafka counts as sent and only snapshots beyond it are published.
    """
    ids: list[str] = []
    highest_state = 0
    for record in records:
        try:
            value = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(value, dict) or value.get("election_id") != election_id:
            continue  # another election sharing the topic
        kind = value.get("message_type")
        if topic == "alerts" and "alert_id" in value:
            ids.append(f"alert:{value['alert_id']}")
        elif topic == "results" and "constituency_id" in value:
            ids.append(f"result:{value['constituency_id']}:{value['revision']}")
        elif topic == "state" and kind == "state_of_parties":
            highest_state = max(highest_state, int(value.get("sequence", 0)))
    ids += [f"state:{n}" for n in range(1, highest_state + 1)]
    return ids


async def _record_sent(redis: Redis, namespace: str, settings: Settings) -> Counter[str]:
    topics = {
        "results": settings.topic_results,
        "state": settings.topic_state,
        "alerts": settings.topic_alerts,
    }
    sent: Counter[str] = Counter()
    for name, topic in topics.items():
        records: list[ConsumerRecord[bytes, bytes]] = []
        async for _, run in read_log(settings, topic):
            records += run
        ids = output_ids_on_kafka(name, records, settings.election_id)
        sent[name] = len(ids)
        for at in range(0, len(ids), 1000):
            await redis.sadd(namespace + ANNOUNCED_IDS, *ids[at : at + 1000])  # type: ignore[misc]
    return sent


async def rebuild(
    store: TallyStore, settings: Settings, register: Register, token: str | None = None
) -> RebuildReport:
    """Wipe the election's state and re-make it from the declarations topic; the caller holds the
    rebuild lock under `token` (None: this call takes it, failing if someone holds it)."""
    redis, ns = store.redis, store.ns
    lock = ns + REBUILD_LOCK
    own_lock = token is None
    token = token or uuid.uuid4().hex
    if own_lock and not await redis.set(lock, token, nx=True, px=LOCK_TTL_MS):
        raise RuntimeError(f"another rebuild of {ns} is under way ({lock} is held)")
    began = time.monotonic()
    keeper = asyncio.create_task(_keep_lock(redis, lock, token))
    try:
        await _wipe(redis, ns, keep=lock)
        await redis.set(ns + ANNOUNCED, HOLD_ANNOUNCED)
        report = await _apply_log(store, settings, register)
        report.already_sent = await _record_sent(redis, ns, settings)
        report.seconds = time.monotonic() - began
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(ns + ANNOUNCED)
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
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if own_lock:
            await redis.eval(_RELEASE, 1, lock, token)  # type: ignore[misc]


__all__ = [
    "REBUILD_LOCK",
    "STATE_MARKER",
    "RebuildError",
    "RebuildReport",
    "ensure_state",
    "group_has_committed",
    "mark_state",
    "output_ids_on_kafka",
    "read_log",
    "rebuild",
    "rebuild_now",
    "state_present",
    "until_redis_answers",
    "with_state",
]
