"""A whole pipeline for one test: its own topics, Redis prefix and consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from redis.asyncio import Redis

from schemas.results import SeatResult, StateOfParties
from scripts.alerts_of_the_night import alerts_of_the_night
from scripts.chaos import Outgoing
from scripts.night_builder import Night
from scripts.replay import ReplayReport, kafka_sender, replay
from streams.connections import redis_from_settings, sync_redis_from_settings
from streams.rules.alerts.story import last_declaration_told
from streams.rules.reference import Register
from streams.settings import Settings, get_settings
from streams.store.holds import DeskHolds
from streams.store.keys import election_namespace
from streams.store.outbox import Outbox
from streams.store.rebuild import state_origin
from streams.store.tally_store import TallyStore
from tests.integration.helpers import WorkerProcess, free_port
from tests.unit.ge2024 import (
    OFFICIAL_SEATS,
    OFFICIAL_VALID_VOTES,
    constituency_rows,
    gains_and_losses,
    votes_by_party,
)

ELECTION_ID = "parl.2024-07-04"
PARTITIONS = 4


@dataclass
class Pipeline:
    kafka_bootstrap: str
    redis_url: str
    prefix: str
    topics: dict[str, str]
    app_id: str

    def env(self) -> dict[str, str]:
        return {
            "ELECTION_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "ELECTION_REDIS_URL": self.redis_url,
            "ELECTION_REDIS_KEY_PREFIX": self.prefix,
            "ELECTION_APP_ID": self.app_id,
            "ELECTION_TOPIC_PARTITIONS": str(PARTITIONS),
            "ELECTION_WEB_PORT": str(free_port()),
            # The desk's holds are in every night the tests run: with nobody at the desk,
            # held alerts go half a second after they are held (the desk's tests say otherwise).
            "ELECTION_DESK_AUTO_RELEASE_S": "0.5",
            **{f"ELECTION_TOPIC_{name.upper()}": topic for name, topic in self.topics.items()},
        }

    def worker(self, name: str = "worker") -> WorkerProcess:
        return WorkerProcess("streams.worker:app", self.env(), name=name)

    def send(self, feed: list[Outgoing], speed: float | None = None) -> ReplayReport:
        with kafka_sender(self.kafka_bootstrap, self.topics["declarations"], PARTITIONS) as send:
            return replay(feed, send, speed)

    def read(self, topic: str) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
        """Everything on one of this pipeline's topics now, from the start."""
        consumer = KafkaConsumer(bootstrap_servers=self.kafka_bootstrap, enable_auto_commit=False)
        name = self.topics[topic]
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    headers = {k: v for k, v in record.headers}
                    messages.append((record.key, record.value, headers))
        consumer.close()
        return messages

    def _redis(self) -> Redis:
        """A client of this pipeline's Redis, built as the worker's are (a Sentinel URL too)."""
        return redis_from_settings(get_settings(), url=self.redis_url)

    async def _store(self) -> tuple[Redis, TallyStore]:
        redis = self._redis()
        return redis, TallyStore(redis, ELECTION_ID, self.prefix)

    def state(self, register: Register) -> StateOfParties:
        async def read() -> StateOfParties:
            redis, store = await self._store()
            try:
                return await store.state(register)
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def seats(self) -> dict[str, SeatResult]:
        async def read() -> dict[str, SeatResult]:
            redis, store = await self._store()
            try:
                return await store.seats()
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def counters(self) -> Counter[str]:
        async def read() -> Counter[str]:
            redis, store = await self._store()
            try:
                return Counter(await store.counters())
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def outbox_alert_ids(self) -> list[str]:
        async def read() -> list[str]:
            redis = self._redis()
            try:
                outbox = Outbox(redis, election_namespace(self.prefix, ELECTION_ID))
                queued = await outbox.read(after=0, count=100_000)
            finally:
                await redis.aclose()
            return [
                orjson.loads(q.output.value)["alert_id"]
                for q in queued
                if q.output.topic == "alerts"
            ]

        return asyncio.run(read())

    def progress(self, committed: bool = True) -> Progress:
        """Where the night stands in Redis and (if `committed`) in the consumer group."""

        async def read() -> Progress:
            redis, store = await self._store()
            try:
                outbox = await Outbox(redis, store.ns).progress()
                seats = await store.seats_tallied()
                read, _ = await store.partitions_read(self.topics["declarations"])
                applied = {partition: at.applied for partition, at in read.items()}
            finally:
                await redis.aclose()
            return Progress(seats, outbox.queued, outbox.published, applied)

        progress = asyncio.run(read())
        if committed:
            progress.committed = self.committed_offsets()
        return progress

    def announced(self) -> int:
        """The last change the publisher turned into outputs."""

        async def read() -> int:
            redis, store = await self._store()
            try:
                return await Outbox(redis, store.ns).announced()
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def committed_offsets(self) -> dict[int, int]:
        """The consumer group's committed offsets on the declarations topic (next to read)."""
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        try:
            offsets = admin.list_group_offsets(self.app_id).get(self.app_id, {})
        finally:
            admin.close()
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if tp.topic == self.topics["declarations"] and meta.offset >= 0
        }

    def wait_for_seats(
        self, seats: int, timeout: float = 120.0, worker_alive: Callable[[], None] | None = None
    ) -> None:
        """Until at least `seats` seats are tallied in Redis (polled every 20 ms)."""
        deadline = time.monotonic() + timeout

        async def wait() -> None:
            redis, store = await self._store()
            try:
                while await store.seats_tallied() < seats:
                    if worker_alive is not None:
                        worker_alive()
                    if time.monotonic() > deadline:
                        raise AssertionError(f"fewer than {seats} seats tallied after {timeout}s")
                    await asyncio.sleep(0.02)
            finally:
                await redis.aclose()

        asyncio.run(wait())

    def wait_for_outbox_backlog(self, timeout: float) -> bool:
        """Until outputs are queued in Redis but not yet marked as on Kafka (polled every
        5 ms): True when seen, False after `timeout`."""
        deadline = time.monotonic() + timeout

        async def wait() -> bool:
            redis, store = await self._store()
            outbox = Outbox(redis, store.ns)
            try:
                while time.monotonic() < deadline:
                    progress = await outbox.progress()
                    if progress.queued > progress.published:
                        return True
                    await asyncio.sleep(0.005)
            finally:
                await redis.aclose()
            return False

        return asyncio.run(wait())

    def state_marker(self) -> dict[str, object] | None:
        """How the state began (fresh, rebuilt, reset): streams/store/rebuild.py's marker."""

        async def read() -> dict[str, object] | None:
            redis, store = await self._store()
            try:
                return await state_origin(redis, store.ns)
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def wait_until_published(
        self,
        register: Register,
        seats: int = 650,
        timeout: float = 240.0,
        worker_alive: Callable[[], None] | None = None,
        published: bool = True,
    ) -> StateOfParties:
        """Until `seats` seats are tallied and (if `published`) every output is on Kafka."""
        deadline = time.monotonic() + timeout

        async def progress() -> tuple[StateOfParties, int, int, int, bool, int]:
            redis, store = await self._store()
            try:
                state = await store.state(register)
                outbox = Outbox(redis, store.ns)
                # With the held alerts that go by themselves, still to come: read together.
                at, due = await DeskHolds(redis, store.ns).progress_with_holds()
                # With every seat in, the night is over once its last declaration is told: the
                # moment waits for the watermark, after the last change's outputs are out.
                whole = state.seats_declared < register.total_seats or last_declaration_told(
                    await outbox.moments_told()
                )
                return state, at.queued, at.published, at.announced, whole, due
            finally:
                await redis.aclose()

        while True:
            state, queued, sent, announced, whole, due = asyncio.run(progress())
            if state.seats_declared >= seats and (
                not published
                or (announced >= state.sequence and sent >= queued > 0 and whole and not due)
            ):
                return state
            if worker_alive is not None:
                worker_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"after {timeout}s: {state.seats_declared} seats, announced {announced}/"
                    f"{state.sequence}, published {sent}/{queued}, {due} alerts held to go"
                )
            time.sleep(0.5)


@dataclass
class Progress:
    seats: int  # seats tallied
    queued: int  # outbox sequence
    published: int  # outbox entries on Kafka
    applied: dict[int, int]  # last offset recorded per declarations partition (Redis)
    committed: dict[int, int] = field(default_factory=dict)  # next offset per partition (group)

    @property
    def outbox_backlog(self) -> int:
        """Outputs queued in Redis but not yet on Kafka."""
        return self.queued - self.published

    @property
    def uncommitted(self) -> int:
        """Declarations applied in Redis whose offsets the group has not committed yet."""
        return sum(
            max(last + 1 - self.committed.get(partition, 0), 0)
            for partition, last in self.applied.items()
        )


class PacedReplay(threading.Thread):
    """The night sent in chunks with a pause after each, in the background, so that faults
    land while declarations are still arriving; `finish()` re-raises a failed send."""

    def __init__(
        self, pipeline: Pipeline, feed: list[Outgoing], chunk: int, pause_s: float
    ) -> None:
        super().__init__(name="paced-replay", daemon=True)
        self.pipeline, self.feed, self.chunk, self.pause_s = pipeline, feed, chunk, pause_s
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        try:
            topic = self.pipeline.topics["declarations"]
            with kafka_sender(self.pipeline.kafka_bootstrap, topic, PARTITIONS) as send:
                for start in range(0, len(self.feed), self.chunk):
                    report = replay(self.feed[start : start + self.chunk], send, None)
                    self.sent += report.total
                    time.sleep(self.pause_s)
        except BaseException as error:  # re-raised in the test's thread by finish()
            self.error = error

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        if self.error is not None:
            raise AssertionError(f"the paced replay failed: {self.error}") from self.error
        assert not self.is_alive(), f"the paced replay did not end within {timeout}s"
        assert self.sent == len(self.feed)


def named_pipeline(kafka_bootstrap: str, redis_url: str, prefix: str) -> Pipeline:
    """A pipeline with unique topic names, left for the worker and the replay to create
    (on a broker of the test's own, where `unique_topic` cannot reach)."""
    run_id = uuid.uuid4().hex[:10]
    topics = {name: f"test-{name.replace('_', '-')}-{run_id}" for name in Settings.topic_kinds()}
    return Pipeline(kafka_bootstrap, redis_url, prefix, topics, f"test-{run_id}")


def remove_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under a test's own Redis prefix."""
    client = sync_redis_from_settings(get_settings(), url=redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def module_pipeline(kafka_bootstrap: str, redis_url: str, hint: str) -> Iterator[Pipeline]:
    """A pipeline of one test module's own (topics, Redis prefix), removed afterwards."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    created: list[str] = []

    def unique_topic(name_hint: str, partitions: int = 1) -> str:
        name = f"test-{hint}-{name_hint}-{uuid.uuid4().hex[:10]}"
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    try:
        yield new_pipeline(kafka_bootstrap, redis_url, prefix, unique_topic)
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics(created)
        admin.close()
        remove_keys(redis_url, prefix)


def new_pipeline(
    kafka_bootstrap: str, redis_url: str, prefix: str, unique_topic: Callable[..., str]
) -> Pipeline:
    topics = {
        "declarations": unique_topic("declarations", PARTITIONS),
        "dead_letter": unique_topic("dead-letter", 1),
        "results": unique_topic("results", PARTITIONS),
        "state": unique_topic("state", 1),
        "alerts": unique_topic("alerts", 1),
        "newsroom": unique_topic("newsroom", 1),
        "audit": unique_topic("audit", 1),
    }
    return Pipeline(kafka_bootstrap, redis_url, prefix, topics, f"test-{uuid.uuid4().hex[:8]}")


DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"


# Assertions shared by the night and fault tests.


def assert_official_result(pipeline: Pipeline, night: Night) -> None:
    """The state in Redis is the official 2024 result: seats, votes, gains and losses by
    party, and every seat's winner and majority."""
    state = pipeline.state(night.register)
    assert state.seats_declared == 650
    assert {p.party: p.seats for p in state.parties if p.seats} == OFFICIAL_SEATS
    assert {p.party: p.votes for p in state.parties if p.votes} == dict(votes_by_party())
    assert state.total_votes == OFFICIAL_VALID_VOTES
    gains, losses = gains_and_losses()
    assert {p.party: p.gains for p in state.parties if p.gains} == dict(gains)
    assert {p.party: p.losses for p in state.parties if p.losses} == dict(losses)
    seats = pipeline.seats()
    rows = constituency_rows()
    assert len(seats) == 650
    for ons_id, seat in seats.items():
        assert seat.winning_party == rows[ons_id]["First party"], seat.constituency_name
        assert seat.majority == int(rows[ons_id]["Majority"]), seat.constituency_name
        assert not seat.recount and not seat.figures_pending, seat.constituency_name


def assert_published_once(pipeline: Pipeline) -> list[dict[str, object]]:
    """Every alert id on the alerts topic once, and exactly the ones the outbox queued."""
    alerts = [orjson.loads(value) for _, value, _ in pipeline.read("alerts")]
    ids = [alert["alert_id"] for alert in alerts]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"alerts published twice: {duplicates}"
    assert sorted(ids) == sorted(pipeline.outbox_alert_ids()), "queued alerts missing on Kafka"
    return alerts


def clean_night_alert_ids() -> list[str]:
    """The alert ids of the clean night: the same rules run in memory, no broker, no crash."""
    policy = Settings().alert_policy()
    return sorted(
        a.alert_id for a in alerts_of_the_night(DATA_DIR, DATA_DIR / "watchlist.csv", policy)
    )


def assert_alerts_of_the_clean_night(
    alerts: list[dict[str, object]], expected_ids: list[str]
) -> None:
    """None lost and none doubled: the alerts on Kafka are the clean night's, each once."""
    ids = sorted(str(alert["alert_id"]) for alert in alerts)
    missing = sorted(set(expected_ids) - set(ids))
    extra = sorted(set(ids) - set(expected_ids))
    unexpected = [
        f"{alert['alert_id']} {alert['type']} {alert['headline']!r}"
        for alert in alerts
        if alert["alert_id"] in extra
    ]
    assert not missing and not extra, f"lost {missing[:5]}..., unexpected {unexpected[:5]}..."
    assert ids == expected_ids


def last_assignment(log: str) -> str:
    """The partition table Faust printed at the worker's latest rebalance."""
    table = log.rsplit("Setting newly assigned partitions", 1)[-1]
    return table.split("for group", 1)[0]


def assigned_partitions(log: str, topic: str) -> str:
    """The partitions of `topic` in the worker's latest assignment, as Faust prints them
    (`{0-3}`), or '' when it holds none."""
    for line in last_assignment(log).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == topic:
            return cells[1]
    return ""
