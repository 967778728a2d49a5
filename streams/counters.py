"""Outcome counters: every consumed message is counted once, in Redis and for Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from prometheus_client import Counter as PrometheusCounter
from prometheus_client import Histogram
from redis.asyncio.client import Pipeline

MESSAGES = PrometheusCounter(
    "election_messages",
    "Consumed messages by stage and outcome",
    ["stage", "outcome"],
)

# From the declaration's Kafka timestamp (its producer's clock) to its tally written in
# Redis: what a reader of the tallies waits, queueing included.
PROCESSING_LATENCY = Histogram(
    "election_processing_latency_seconds",
    "Seconds from a declaration's Kafka timestamp to its tally being visible in Redis",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

COUNTERS_KEY = "counters"


def observe_latency(timestamps: Iterable[float | None], now: float) -> None:
    """Record each message's latency; a message without a timestamp is not timed."""
    for timestamp in timestamps:
        if timestamp:
            PROCESSING_LATENCY.observe(max(now - timestamp, 0.0))


class OutcomeTally:
    """Outcomes of one batch, flushed in the batch's single Redis round trip."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, count: int = 1) -> None:
        self.outcomes[outcome] += count

    def queue(self, pipe: Pipeline, namespace: str) -> None:
        for outcome, count in self.outcomes.items():
            pipe.hincrby(namespace + COUNTERS_KEY, f"{self.stage}:{outcome}", count)

    def observe(self) -> None:
        for outcome, count in self.outcomes.items():
            MESSAGES.labels(self.stage, outcome).inc(count)


def parse_counters(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    return {
        (key.decode() if isinstance(key, bytes) else key): int(value) for key, value in raw.items()
    }
