"""Publisher: turns applied changes into results, snapshots and alerts, each on Kafka once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.alert import Alert
from schemas.results import SeatResult
from streams import alert_rules
from streams.alert_rules import AlertPolicy
from streams.app import app
from streams.connections import kafka_client_options
from streams.outbox import Outbox, Output, QueuedOutput
from streams.rebuild import REDIS_UNAVAILABLE, state_present
from streams.reference import Register
from streams.resources import election_namespace, redis_client, register
from streams.settings import get_settings
from streams.tally import RunningTotals, state_of_parties
from streams.tally_store import CHANGES, Change, TallyStore
from streams.watchlist import Watchlist, load_watchlist, watchlist_path

log = logging.getLogger(__name__)
settings = get_settings()

OUTBOX_SEQ_HEADER = "outbox-seq"
OUTBOX_EPOCH_HEADER = "outbox-epoch"
LOCK_TTL_MS = 10_000
TICK_S = 0.1  # the publisher's timer: lock renewal, and taking over from a stopped leader
RESYNC_WINDOW = 2_000


def outputs_of_changes(
    changes: Sequence[Change],
    running: RunningTotals,
    register: Register,
    watchlist: Watchlist,
    policy: AlertPolicy,
) -> list[tuple[int, list[Output]]]:
    """Everything a run of applied changes publishes, change by change, by pure functions.

    Each seat change publishes its result and its alerts; the run publishes one snapshot of
    the state of the parties, after its last seat change. Graphics show the latest state, and
    a snapshot (votes and shares of a hundred parties) after every change of a fast run cost
    more than everything else the publisher does; when changes come one at a time, as on the
    night, each still gets its own. `running` holds the totals before the run and is moved on
    past it.
    """
    announcements: list[tuple[int, list[Output]]] = []
    last_seat: SeatResult | None = None
    before = running.seat_count(register)
    for change in changes:
        if change.exit_poll is not None:
            alerts = alert_rules.detect_exit_poll(change.exit_poll, register, policy)
            running.skip_to(change.sequence)
            announcements.append((change.sequence, [_alert_output(alert) for alert in alerts]))
            continue
        assert change.result is not None
        result: SeatResult = change.result
        running.apply(change.delta, change.sequence)
        after = running.seat_count(register)
        applied = alert_rules.AppliedChange(
            result=result, previous=change.previous, state_before=before, state_after=after
        )
        alerts = alert_rules.detect_change(applied, register, watchlist, policy)
        outputs = [
            Output(
                output_id=f"result:{result.constituency_id}:{result.revision}",
                topic="results",
                key=result.constituency_id,
                value=change.result_json or result.model_dump_json().encode(),
            )
        ]
        outputs += [_alert_output(alert) for alert in alerts]
        announcements.append((change.sequence, outputs))
        before, last_seat = after, result
    if last_seat is not None:
        snapshot = state_of_parties(
            running.totals,
            register,
            last_seat.sequence,
            last_seat.declared_at,
            last_seat.constituency_id,
        )
        announcements[-1][1].append(
            Output(
                output_id=f"state:{last_seat.sequence}",
                topic="state",
                key=register.election_id,
                value=snapshot.model_dump_json().encode(),
            )
        )
    return announcements


def _alert_output(alert: Alert) -> Output:
    return Output(
        output_id=f"alert:{alert.alert_id}",
        topic="alerts",
        key=alert.alert_id,
        value=alert.model_dump_json().encode(),
    )


class Publisher:
    """The one publisher of an election: whoever holds the Redis lock announces and drains."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.redis = redis_client()
        self.ns = election_namespace()
        self.outbox = Outbox(self.redis, self.ns)
        self.store = TallyStore(self.redis, settings.election_id, settings.redis_key_prefix)
        self.topics = {
            "results": settings.topic_results,
            "state": settings.topic_state,
            "alerts": settings.topic_alerts,
        }
        self.producer: AIOKafkaProducer | None = None
        self.leading = False
        self.running: RunningTotals | None = None  # the totals after the last change announced
        self.watchlist = load_watchlist(watchlist_path(settings))
        self.policy = AlertPolicy.from_settings(settings)
        self.epoch = ""
        self.on_kafka: set[int] = set()  # outbox entries past the cursor found on Kafka
        self.announced = 0  # the newest change announced, as far as this publisher knows

    async def tick(self) -> None:
        if not await state_present(self.redis, self.ns):
            # Redis lost the state, or a rebuild is under way: nothing may be announced from
            # a half-built change log, and what this publisher remembers belongs to the old one.
            self.leading = False
            self.running = None
            return
        if not await self.outbox.acquire_lock(self.token, LOCK_TTL_MS):
            self.leading = False
            return
        if not self.leading:
            # Just became the publisher: what reached Kafka before a crash is the truth.
            await self._start_producer()
            self.epoch = await self.outbox.epoch()
            await self._resync_from_kafka()
            self.running = None
            self.leading = True
        try:
            fresh = await self._announce()
            await self._drain(fresh)
        except Exception:
            # Never let a broker or Redis hiccup kill the worker: what was not marked
            # published is sent again after a resync, which skips what Kafka already has.
            log.exception("publisher failed; will resync from Kafka and retry")
            self.leading = False

    async def _start_producer(self) -> None:
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                **kafka_client_options(settings),
                acks="all",
                enable_idempotence=True,
                linger_ms=1,  # alerts go out within a millisecond or two of the tally
            )
            await self.producer.start()

    async def stop(self) -> None:
        self.leading = False  # ends the timer's follow loop before the producer goes
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        await self.outbox.release_lock(self.token)

    async def wait_for_change(self, timeout_s: float) -> bool:
        """Block until the change log has an entry past what was announced, or the timeout."""
        if timeout_s <= 0:
            return False
        reply: Any = await self.redis.xread(
            {self.store.key(CHANGES): f"{self.announced}-0"}, count=1, block=int(timeout_s * 1000)
        )
        return bool(reply)

    async def _announce(self) -> list[QueuedOutput]:
        """Queue the outputs of the changes not yet announced; returns what was queued."""
        announced = await self.outbox.announced()
        self.announced = announced
        changes = await self.store.changes(after=announced, count=settings.batch_size)
        if not changes:
            return []
        self.announced = changes[-1].sequence
        if self.running is None or self.running.sequence != announced:
            self.running = RunningTotals(await self.store.totals_at(announced), announced)
        announcements = outputs_of_changes(
            changes, self.running, register(), self.watchlist, self.policy
        )
        # One round trip for the batch of changes, as on the tally side.
        return await self.outbox.announce_many(announcements)

    async def _drain(self, fresh: Sequence[QueuedOutput]) -> None:
        """Send what is queued and not yet on Kafka; what was just queued is sent from memory
        when it follows straight on from the published cursor, else read back from Redis."""
        assert self.producer is not None
        published = await self.outbox.published()
        if fresh and fresh[0].sequence == published + 1 and not self.on_kafka:
            await self._send(fresh)
            await self.outbox.mark_published(fresh[-1].sequence)
            return
        while True:
            queued = await self.outbox.read(after=published, count=500)
            if not queued:
                return
            await self._send([item for item in queued if item.sequence not in self.on_kafka])
            published = queued[-1].sequence
            await self.outbox.mark_published(published)
            self.on_kafka = {seq for seq in self.on_kafka if seq > published}

    async def _send(self, queued: Sequence[QueuedOutput]) -> None:
        assert self.producer is not None
        futures = []
        for item in queued:
            futures.append(
                await self.producer.send(
                    self.topics[item.output.topic],
                    key=item.output.key.encode(),
                    value=item.output.value,
                    headers=[
                        (OUTBOX_SEQ_HEADER, str(item.sequence).encode()),
                        (OUTBOX_EPOCH_HEADER, self.epoch.encode()),
                    ],
                )
            )
        await asyncio.gather(*futures)

    async def _resync_from_kafka(self) -> None:
        """Learn which outbox entries a crashed publisher already put on Kafka.

        Entries for different partitions can land out of order when a publisher dies mid-send
        (a later snapshot on Kafka, an earlier alert not), so the cursor moves only up to the
        first entry missing, and the drain skips the later ones that are there.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            **kafka_client_options(settings),
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            # Every topic's partitions first: once a partition is assigned, a metadata update
            # covers assigned topics only, and a topic looked up after that would be missed.
            await consumer._client.force_metadata_update()  # topics may be new
            partitions_of = {
                topic: consumer.partitions_for_topic(topic) or set()
                for topic in self.topics.values()
            }
            present: set[int] = set()
            for topic, partitions in partitions_of.items():
                for partition in partitions:
                    present |= await _outbox_seqs(consumer, topic, partition, self.epoch)
            published = newest = await self.outbox.published()
            while newest + 1 in present:
                newest += 1
            self.on_kafka = {seq for seq in present if seq > newest}
            if newest > published:
                await self.outbox.mark_published(newest)
            log.info(
                "publisher resynced: outbox entries up to %d are on Kafka, and %d after them",
                newest,
                len(self.on_kafka),
            )
        finally:
            await consumer.stop()


async def _outbox_seqs(
    consumer: AIOKafkaConsumer, topic: str, partition: int, epoch: str
) -> set[int]:
    """The outbox sequences of this epoch among a partition's last messages.

    A window rather than only the last message, so another election or an old night sharing
    the topic cannot hide what this publisher already sent.
    """
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.seek(tp, max(end - RESYNC_WINDOW, 0))
    seqs: set[int] = set()
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=5000)
        records = batch.get(tp, [])
        if not records:
            break
        for record in records:
            headers = dict(record.headers)
            if headers.get(OUTBOX_EPOCH_HEADER, b"").decode() == epoch:
                seqs.add(int(headers.get(OUTBOX_SEQ_HEADER, b"0")))
    return seqs


_publisher: Publisher | None = None


@app.timer(interval=TICK_S)
async def publish_outputs() -> None:
    global _publisher
    if _publisher is None:
        _publisher = Publisher()
    try:
        await _publisher.tick()
        # While it leads, the publisher follows the change log: a blocking read wakes it as
        # soon as a tally step appends, and a tick at least every TICK_S renews the lock. It
        # does not return to the timer, which sleeps a whole interval after every run.
        while _publisher.leading:
            await _publisher.wait_for_change(TICK_S)
            await _publisher.tick()
    except REDIS_UNAVAILABLE as error:
        # An exception would end this timer for good: stand down, take over afresh later.
        log.warning("publisher: Redis unavailable (%s)", error)
        _publisher.leading = False
    except Exception:
        log.exception("publisher could not take over; will try again")
        _publisher.leading = False


@app.on_before_shutdown.connect  # type: ignore[misc, arg-type]
async def _release_publisher(app: Any, **kwargs: Any) -> None:
    if _publisher is not None:
        await _publisher.stop()
