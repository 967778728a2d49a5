"""The ingest's way out to Kafka: declarations and dead letters, acknowledged a poll at a time."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.connections import kafka_client_options
from streams.settings import Settings

# A broker that does not answer within these is an error the ingest retries at its next poll.
REQUEST_TIMEOUT_MS = 10_000
CONFIRM_TIMEOUT_S = 60.0


class OutputNotAcknowledged(RuntimeError):
    """Some of a poll's messages may not be on Kafka: the poll is not recorded, and retried."""


class KafkaFeedOutput:
    def __init__(self, producer: KafkaProducer, declarations_topic: str, dead_letter_topic: str):
        self._producer = producer
        self._declarations = declarations_topic
        self._dead_letter = dead_letter_topic
        self._failures: list[BaseException] = []

    def publish(self, key: bytes, value: bytes) -> None:
        self._send(self._declarations, key, value, [])

    def dead_letter(self, key: bytes, value: bytes, reason: str) -> None:
        self._send(self._dead_letter, key, value, [("reason", reason.encode())])

    def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        try:
            future = self._producer.send(topic, key=key, value=value, headers=headers)
        except KafkaError as exc:
            self._failures.append(exc)
            return
        future.add_errback(self._failures.append)

    def confirm(self) -> None:
        """Return once every message sent so far is acknowledged by all in-sync replicas."""
        try:
            self._producer.flush(timeout=CONFIRM_TIMEOUT_S)
        except KafkaError as exc:
            self._failures.append(exc)
        if self._failures:
            failures, self._failures = self._failures, []
            raise OutputNotAcknowledged(
                f"{len(failures)} messages not acknowledged by Kafka: {failures[0]!r}"
            )

    def close(self) -> None:
        self._producer.close(timeout=10)


def kafka_feed_output(settings: Settings) -> KafkaFeedOutput:
    """An idempotent producer to the settings' declarations and dead-letter topics."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,  # a retried batch is never written twice
        "linger_ms": 5,
        "max_block_ms": REQUEST_TIMEOUT_MS,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        **kafka_client_options(settings),
    }
    return KafkaFeedOutput(
        KafkaProducer(**options), settings.topic_declarations, settings.topic_dead_letter
    )
