"""First round trips against the real broker and Redis: kafka-python, a Faust worker, Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis
from kafka import KafkaConsumer, KafkaProducer

from tests.integration.helpers import WorkerProcess, read_topic


def test_kafka_python_produces_and_consumes(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("roundtrip", partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    sent = {f"seat-{n}".encode(): f"declaration {n}".encode() for n in range(300)}
    for key, value in sent.items():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    received = {record.key: record.value for record in consumer}
    consumer.close()
    assert received == sent


def test_a_faust_worker_process_consumes_and_produces(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    source = unique_topic("echo-in", partitions=2)
    sink = unique_topic("echo-out", partitions=2)
    env = {
        "ELECTION_APP_ID": f"echo-{uuid.uuid4().hex[:8]}",
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ECHO_IN": source,
        "ECHO_OUT": sink,
    }
    with WorkerProcess("tests.integration.apps.echo_app:app", env, name="echo") as worker:
        worker.wait_for_log("Ready", timeout=90)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for n in range(50):
            producer.send(source, key=f"k{n}".encode(), value=f"labour gain {n}".encode())
        producer.flush()
        producer.close()
        received = read_topic(kafka_bootstrap, sink, until=lambda got: len(got) >= 50)
    assert sorted(value for _, value in received) == sorted(
        f"LABOUR GAIN {n}".encode() for n in range(50)
    )


def test_redis_write_and_read(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(redis_prefix + "seat", mapping={"winner": "Lab", "majority": "630"})
    assert client.hgetall(redis_prefix + "seat") == {b"winner": b"Lab", b"majority": b"630"}
    client.close()
