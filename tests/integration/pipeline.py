"""A whole pipeline for one test: its own topics, Redis prefix and consumer group."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition
from redis.asyncio import Redis

from schemas.results import SeatResult, StateOfParties
from scripts.chaos import Outgoing
from scripts.replay import ReplayReport, kafka_sender, replay
from streams.outbox import OUTBOX_SEQ, PUBLISHED, Outbox
from streams.redis_keys import election_namespace
from streams.reference import Register
from streams.tally_store import TallyStore
from tests.integration.helpers import WorkerProcess, free_port

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
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": self.prefix,
            "APP_ID": self.app_id,
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "WEB_PORT": str(free_port()),
            **{f"TOPIC_{name.upper()}": topic for name, topic in self.topics.items()},
        }

    def worker(self, name: str = "worker") -> WorkerProcess:
        return WorkerProcess("streams.app:app", self.env(), name=name)

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

    async def _store(self) -> tuple[Redis, TallyStore]:
        redis = Redis.from_url(self.redis_url)
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
            redis = Redis.from_url(self.redis_url)
            try:
                raw = await redis.hgetall(election_namespace(self.prefix, ELECTION_ID) + "counters")
            finally:
                await redis.aclose()
            return Counter({k.decode(): int(v) for k, v in raw.items()})

        return asyncio.run(read())

    def outbox_alert_ids(self) -> list[str]:
        async def read() -> list[str]:
            redis = Redis.from_url(self.redis_url)
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

        async def progress() -> tuple[StateOfParties, int, int, int]:
            redis, store = await self._store()
            try:
                ns = store.ns
                queued, published = await redis.mget(ns + OUTBOX_SEQ, ns + PUBLISHED)
                announced = await Outbox(redis, ns).announced()
                return (
                    await store.state(register),
                    int(queued or 0),
                    int(published or 0),
                    announced,
                )
            finally:
                await redis.aclose()

        while True:
            state, queued, sent, announced = asyncio.run(progress())
            if state.seats_declared >= seats and (
                not published or (announced >= state.sequence and sent >= queued > 0)
            ):
                return state
            if worker_alive is not None:
                worker_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"after {timeout}s: {state.seats_declared} seats, announced {announced}/"
                    f"{state.sequence}, published {sent}/{queued}"
                )
            time.sleep(0.5)


def new_pipeline(
    kafka_bootstrap: str, redis_url: str, prefix: str, unique_topic: Callable[..., str]
) -> Pipeline:
    topics = {
        "declarations": unique_topic("declarations", PARTITIONS),
        "accepted": unique_topic("accepted", PARTITIONS),
        "dead_letter": unique_topic("dead-letter", 1),
        "results": unique_topic("results", PARTITIONS),
        "state": unique_topic("state", 1),
        "alerts": unique_topic("alerts", 1),
    }
    return Pipeline(kafka_bootstrap, redis_url, prefix, topics, f"test-{uuid.uuid4().hex[:8]}")


DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "ge2024"
