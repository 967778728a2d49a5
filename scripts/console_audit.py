"""The console commands' audit trail: their own producer to the audit topic, as console:<user>.

`election-reset`, `election-rebuild` and `election-desk-tokens` run no worker, so they
write their records with a producer of their own (acks=all), each action's intent first:

    with console_audit(settings) as trail:
        async with trail.acting(AuditAction.RESET, console_person(), target, before):
            ...  # runs only once the intent is on Kafka
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.audit import Role
from streams.connections import kafka_client_options
from streams.pipeline.audit import WRITE_TIMEOUT_S, AuditNotWritten, AuditTrail, Send
from streams.pipeline.topics import audit_config
from streams.rules.desk import CONSOLE, Person
from streams.settings import Settings

# Also how long to look for a broker at all: kafka-python's own default is 30 s, twice what
# the audit trail waits for a record, and an operator is waiting on the answer.
REQUEST_TIMEOUT_MS = 10_000


def console_person() -> Person:
    """Whoever runs the command: an operator with the keys to Redis and Kafka, so an admin."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown"
    return Person(f"{CONSOLE}{user}", Role.ADMIN)


def not_recorded(error: AuditNotWritten) -> str:
    """What the operator is told when the intent is not on Kafka, so nothing was done."""
    return f"nothing changed: the audit trail could not be written ({error})"


@contextlib.contextmanager
def audit_sender(settings: Settings) -> Iterator[Send]:
    """Sends to the audit topic through a producer of this process (acks=all), the topic
    created as the worker creates it when no worker has yet; AuditNotWritten if Kafka is
    not there to take it."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "bootstrap_timeout_ms": REQUEST_TIMEOUT_MS,
        **kafka_client_options(settings),
    }
    try:
        admin = KafkaAdminClient(**options)
        try:
            admin.create_topics(
                [
                    NewTopic(
                        settings.topic_audit,
                        1,
                        settings.topic_replication_factor,
                        topic_configs=audit_config(settings),
                    )
                ]
            )
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        producer = KafkaProducer(
            acks="all", enable_idempotence=True, max_block_ms=REQUEST_TIMEOUT_MS, **options
        )
    except KafkaError as error:
        raise AuditNotWritten(f"Kafka at {settings.kafka_bootstrap_servers}: {error!r}") from error

    async def send(key: bytes, value: bytes) -> Any:
        future = producer.send(settings.topic_audit, key=key, value=value)
        return await asyncio.to_thread(future.get, WRITE_TIMEOUT_S)

    try:
        yield send
    finally:
        producer.close(timeout=REQUEST_TIMEOUT_MS / 1000)


@contextlib.contextmanager
def console_audit(settings: Settings) -> Iterator[AuditTrail]:
    """The audit trail of `settings.election_id`, in `settings.mode`, through `audit_sender`."""
    with audit_sender(settings) as send:
        yield AuditTrail(send, settings.election_id, settings.mode == "rehearsal")
