"""A worker on a broker that has none of its topics yet: it creates them all and runs at once."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient

from scripts.night_builder import build_night
from scripts.replay import build_outgoing
from tests.integration.pipeline import DATA_DIR, PARTITIONS, Pipeline

EXPECTED_PARTITIONS = {
    "declarations": PARTITIONS,
    "dead_letter": 1,
    "results": PARTITIONS,
    "state": 1,
    "alerts": 1,
}


@pytest.fixture
def fresh_pipeline(kafka_bootstrap: str, redis_url: str, redis_prefix: str) -> Iterator[Pipeline]:
    # Names no one has created: this is a newcomer's first night on a new broker.
    run = uuid.uuid4().hex[:10]
    topics = {name: f"test-fresh-{name}-{run}" for name in EXPECTED_PARTITIONS}
    yield Pipeline(kafka_bootstrap, redis_url, redis_prefix, topics, f"test-fresh-{run}")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    with contextlib.suppress(Exception):
        admin.delete_topics(list(topics.values()))
    admin.close()


def partitions_of(kafka_bootstrap: str, topics: dict[str, str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_topics(list(topics.values()))
    finally:
        admin.close()
    by_name = {d["name"]: len(d["partitions"]) for d in described if not d["error_code"]}
    return {name: by_name.get(topic, 0) for name, topic in topics.items()}


def test_a_worker_creates_every_topic_and_tallies_without_waiting_for_a_rebalance(
    fresh_pipeline: Pipeline, kafka_bootstrap: str
) -> None:
    night = build_night(DATA_DIR)
    feed = build_outgoing(DATA_DIR)[:41]  # the exit poll and the first 40 seats
    with fresh_pipeline.worker("fresh") as worker:
        worker.wait_for_log("Ready", timeout=120)
        deadline = time.monotonic() + 30
        while partitions_of(kafka_bootstrap, fresh_pipeline.topics) != EXPECTED_PARTITIONS:
            assert time.monotonic() < deadline, partitions_of(
                kafka_bootstrap, fresh_pipeline.topics
            )
            time.sleep(0.5)
        fresh_pipeline.send(feed)
        # Before the fix the consumer ignored a topic missing at start until its metadata
        # refresh, five minutes later; a minute is plenty for 40 seats.
        state = fresh_pipeline.wait_until_published(night.register, seats=40, timeout=60)
    assert state.seats_declared == 40
