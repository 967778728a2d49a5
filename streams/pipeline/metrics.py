"""Prometheus metrics of the declaration agent: outcomes of consumed messages and their latency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client import Counter as PrometheusCounter
from prometheus_client import Histogram

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


def observe_latency(timestamps: Iterable[float | None], now: float) -> None:
    """Record each message's latency; a message without a timestamp is not timed."""
    for timestamp in timestamps:
        if timestamp:
            PROCESSING_LATENCY.observe(max(now - timestamp, 0.0))


def observe_outcomes(outcomes: Iterable[tuple[str, str]]) -> None:
    """Count a batch's (stage, outcome) pairs: one increment per label, not one per message."""
    for (stage, outcome), count in Counter(outcomes).items():
        MESSAGES.labels(stage, outcome).inc(count)
