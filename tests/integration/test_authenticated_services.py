"""Authenticated paths on real services: Kafka SASL/SCRAM and Redis AUTH, from the settings.

The shared broker on 19092 stays as it is: this module starts its own broker and Redis
through scripts/services.py in a temporary run folder on free ports (a SASL_PLAINTEXT
listener with a SCRAM user, and a Redis that requires a password), and stops them by their
recorded pids at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError as SyncKafkaError
from pydantic import SecretStr

from scripts import services
from scripts.replay import build_outgoing, kafka_sender, replay
from streams.connections import kafka_client_options, redis_from_settings, sync_redis_from_settings
from streams.settings import Settings, get_settings
from streams.store.outbox import Outbox, OutboxProgress
from streams.store.tally_store import TallyStore
from tests.integration.helpers import WorkerProcess, free_port
from tests.integration.pipeline import DATA_DIR, ELECTION_ID
from tests.integration.service_choice import require_own

USER = "night-desk"
PASSWORD = "correct horse battery staple"
REDIS_PASSWORD = "redis-auth-" + uuid.uuid4().hex[:8]
SEATS = 40  # declarations sent through the authenticated worker: enough to show the path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker with a SCRAM listener and a Redis with requirepass, ours alone."""
    require_own(get_settings(), "a SCRAM broker and a redis-server", kafka=True, redis=True)
    run_dir = tmp_path_factory.mktemp("secured-run")
    shared = services.Paths.of(get_settings())
    services.fetch_kafka(shared)  # no-op when the jars are there (test.sh started the broker)
    # The jars are the shared ones; data, logs and pid files are this run folder's own.
    settings = Settings(
        run_dir=run_dir,
        kafka_libs_dir=shared.kafka_libs,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_sasl_port=free_port(),
        redis_port=free_port(),
        kafka_heap="256m",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(PASSWORD),
        redis_password=SecretStr(REDIS_PASSWORD),
    )
    try:
        services.start_services(settings)
        yield settings
    finally:
        services.stop_services(settings)
    assert services.read_pid(services.Paths(run_dir).kafka_pid) is None


def client_settings(secured: Settings, password: str = PASSWORD, **more: object) -> Settings:
    """What a worker or the replay would read from its environment to use the SASL listener."""
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{secured.kafka_sasl_port}",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(password),
        redis_url=f"redis://127.0.0.1:{secured.redis_port}/0",
        redis_password=SecretStr(REDIS_PASSWORD),
        **more,  # type: ignore[arg-type]
    )


def failed_logins(settings: Settings) -> int:
    log = services.Paths(settings.run_dir).kafka_server_log.read_text(errors="replace")
    return log.count("Failed authentication")


async def night_so_far(settings: Settings, prefix: str) -> tuple[dict[str, int], OutboxProgress]:
    """The outcome counters and the outbox's cursors, read through Redis AUTH."""
    redis = redis_from_settings(settings)
    try:
        store = TallyStore(redis, ELECTION_ID, prefix)
        return await store.counters(), await Outbox(redis, store.ns).progress()
    finally:
        await redis.aclose()


# ---- Redis AUTH ----


def test_redis_answers_the_right_password_only(secured: Settings) -> None:
    good = sync_redis_from_settings(client_settings(secured))
    try:
        assert good.set("auth-check", b"1") and good.get("auth-check") == b"1"
    finally:
        good.close()
    for password in ("wrong", None):
        settings = client_settings(secured).model_copy(
            update={"redis_password": SecretStr(password) if password else None}
        )
        client = sync_redis_from_settings(settings)
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()


async def test_the_async_client_from_the_settings_authenticates(secured: Settings) -> None:
    client = redis_from_settings(client_settings(secured))
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    # The URL's own password wins over ELECTION_REDIS_PASSWORD: a wrong one there is refused.
    wrong_url = f"redis://:nope@127.0.0.1:{secured.redis_port}/0"
    client = redis_from_settings(client_settings(secured), url=wrong_url)
    try:
        with pytest.raises(redis.AuthenticationError):
            await client.ping()
    finally:
        await client.aclose()


# ---- Kafka SASL/SCRAM ----


def test_kafka_python_produces_and_consumes_through_scram(secured: Settings) -> None:
    options = kafka_client_options(client_settings(secured))
    bootstrap = f"127.0.0.1:{secured.kafka_sasl_port}"
    topic = f"scram-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, **options)
    producer.send(topic, key=b"k", value=b"through SCRAM").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **options,
    )
    values = [record.value for record in itertools.islice(consumer, 1)]
    consumer.close()
    assert values == [b"through SCRAM"]


def test_kafka_python_with_a_wrong_password_is_refused(secured: Settings) -> None:
    before = failed_logins(secured)
    options = kafka_client_options(client_settings(secured, password="not the password"))
    with pytest.raises(SyncKafkaError):
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{secured.kafka_sasl_port}",
            max_block_ms=5000,
            bootstrap_timeout_ms=5000,
            **options,
        )
        try:
            producer.send("refused", value=b"x").get(timeout=10)
        finally:
            producer.close(timeout=1)
    assert failed_logins(secured) > before, "the broker logged no failed authentication"


async def test_aiokafka_produces_and_consumes_through_scram_and_refuses_a_wrong_password(
    secured: Settings,
) -> None:
    bootstrap = f"127.0.0.1:{secured.kafka_sasl_port}"
    topic = f"scram-aio-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_client_options(client_settings(secured))
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"aiokafka through SCRAM")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        **kafka_client_options(client_settings(secured)),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.value == b"aiokafka through SCRAM"

    before = failed_logins(secured)
    wrong = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        request_timeout_ms=5000,
        **kafka_client_options(client_settings(secured, password="wrong")),
    )
    with pytest.raises(KafkaError):
        await wrong.start()
    await wrong.stop()
    assert failed_logins(secured) > before


def test_a_worker_runs_the_night_through_scram_and_redis_auth(secured: Settings) -> None:
    """The Faust app (broker_credentials), the publisher and the Redis clients, all from env."""
    settings = client_settings(secured)
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    env = {
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ELECTION_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ELECTION_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "ELECTION_KAFKA_SASL_USERNAME": USER,
        "ELECTION_KAFKA_SASL_PASSWORD": PASSWORD,
        "ELECTION_REDIS_URL": settings.redis_url,
        "ELECTION_REDIS_PASSWORD": REDIS_PASSWORD,
        "ELECTION_REDIS_KEY_PREFIX": prefix,
    }
    feed = build_outgoing(DATA_DIR)[: SEATS + 1]  # the exit poll and the first seats
    # The topics exist before the worker subscribes, as on the night (and via SCRAM too).
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_options(settings)
    )
    admin.create_topics(
        [
            NewTopic(name, settings.topic_partitions, 1)
            for name in (settings.topic_declarations, settings.topic_results)
        ]
        + [
            NewTopic(name, 1, 1)
            for name in (settings.topic_dead_letter, settings.topic_state, settings.topic_alerts)
        ]
    )
    admin.close()
    with WorkerProcess("streams.worker:app", env, name="scram") as worker:
        worker.wait_for_log("Ready", timeout=120)
        with kafka_sender(
            settings.kafka_bootstrap_servers,
            settings.topic_declarations,
            settings.topic_partitions,
            kafka_client_options(settings),
        ) as send:
            replay(feed, send, None)
        deadline = time.monotonic() + 120
        counters: dict[str, int] = {}
        while time.monotonic() < deadline:
            counters, outbox = asyncio.run(night_so_far(settings, prefix))
            # Every seat tallied and every output of them on Kafka (the publisher's SCRAM).
            if counters.get("tally:applied", 0) >= SEATS and 0 < outbox.queued <= outbox.published:
                break
            time.sleep(0.5)
        log = worker.log()
    assert counters.get("validation:accepted", 0) == SEATS + 1, (counters, log[-3000:])
    assert counters["tally:applied"] == SEATS
    assert "SaslAuthenticationFailed" not in log and "AuthenticationError" not in log
    # The publisher's results reached the topic, read back through SCRAM.
    consumer = KafkaConsumer(
        settings.topic_results,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
        **kafka_client_options(settings),
    )
    results = {record.key for record in consumer}
    consumer.close()
    assert len(results) == SEATS
