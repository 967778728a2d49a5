"""The ingest's way out to Kafka: declarations and dead letters a poll at a time; desk notes."""

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
    def __init__(
        self,
        producer: KafkaProducer,
        declarations_topic: str,
        dead_letter_topic: str,
        newsroom_topic: str,
    ):
        self._producer = producer
        self._declarations = declarations_topic
        self._dead_letter = dead_letter_topic
        self._newsroom = newsroom_topic
        self._failures: list[BaseException] = []
        self._published: list[Any] = []  # the declarations' futures since the last confirm
        self._acknowledged: dict[int, int] = {}

    def publish(self, key: bytes, value: bytes) -> None:
        future = self._send(self._declarations, key, value, [])
        if future is not None:
            self._published.append(future)

    def dead_letter(self, key: bytes, value: bytes, reason: str) -> None:
        self._send(self._dead_letter, key, value, [("reason", reason.encode())])

    def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        try:
            future = self._producer.send(topic, key=key, value=value, headers=headers)
        except KafkaError as exc:
            self._failures.append(exc)
            return None
        future.add_errback(self._failures.append)
        return future

    def confirm(self) -> None:
        """Return once every message sent so far is acknowledged by all in-sync replicas."""
        try:
            self._producer.flush(timeout=CONFIRM_TIMEOUT_S)
        except KafkaError as exc:
            self._failures.append(exc)
        published, self._published = self._published, []
        if self._failures:
            failures, self._failures = self._failures, []
            raise OutputNotAcknowledged(
                f"{len(failures)} messages not acknowledged by Kafka: {failures[0]!r}"
            )
        for future in published:
            record = future.value
            last = self._acknowledged.get(record.partition, -1)
            self._acknowledged[record.partition] = max(last, record.offset)

    def acknowledged(self) -> dict[int, int]:
        """The last offset of a declaration Kafka acknowledged, per partition, since start."""
        return dict(self._acknowledged)

    def tell_newsroom(self, key: bytes, value: bytes) -> None:
        """Send one note for the desk and wait for Kafka to take it (OutputNotAcknowledged if
        not). Apart from the polls' messages: a note Kafka refuses never fails a poll."""
        try:
            future = self._producer.send(self._newsroom, key=key, value=value)
            future.get(timeout=CONFIRM_TIMEOUT_S)
        except KafkaError as exc:
            raise OutputNotAcknowledged(f"a note for the newsroom was not taken: {exc!r}") from exc

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
        KafkaProducer(**options),
        settings.topic_declarations,
        settings.topic_dead_letter,
        settings.topic_newsroom,
    )
