"""Outcome counters: every consumed message is counted once, in Redis and for Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from prometheus_client import Counter as PrometheusCounter
from redis.asyncio.client import Pipeline

MESSAGES = PrometheusCounter(
    "election_messages",
    "Consumed messages by stage and outcome",
    ["stage", "outcome"],
)

COUNTERS_KEY = "counters"


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
