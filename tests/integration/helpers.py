"""Run real Faust worker processes against the test broker, and read topics back."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer

# Scripts (the benchmark) run workers too, and must not import from tests/.
from scripts.worker_process import LOG_DIR, PROJECT_ROOT, WorkerProcess, free_port

__all__ = ["LOG_DIR", "PROJECT_ROOT", "WorkerProcess", "free_port", "read_topic"]


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[tuple[bytes | None, bytes]]], bool],
    timeout: float = 60.0,
) -> list[tuple[bytes | None, bytes]]:
    """Read a topic from the start until `until(messages)` holds or the timeout passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    messages: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(messages):
            for record in consumer:
                messages.append((record.key, record.value))
                if until(messages):
                    break
    finally:
        consumer.close()
    return messages
