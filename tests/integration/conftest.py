"""Integration fixtures: a real Kafka broker and a real Redis, and per-test isolation on them.

Resolution order: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL from the environment; else
testcontainers when a Docker engine answers; else the project's own local services
(scripts/services.py). With ELECTION_REQUIRE_SERVICES=1 or CI set, failing to get them
fails the run with the reason; integration tests never skip there.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from scripts.night_builder import Night, build_night
from tests.integration.pipeline import DATA_DIR, Pipeline, new_pipeline, remove_keys


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str
    source: str


def _must_have_services() -> bool:
    ci = os.environ.get("CI", "").strip().lower()
    return os.environ.get("ELECTION_REQUIRE_SERVICES") == "1" or ci not in {"", "0", "false"}


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        return bool(client.ping())
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test under tests/integration needs the real services: `-m "not integration"`
    # leaves them out without each file having to say so.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def _unavailable(reason: str) -> NoReturn:
    """Fail where services are required (test.sh, CI); skip on a developer's bare machine."""
    reason = f"no Kafka/Redis for integration tests: {reason}"
    if _must_have_services():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    kafka_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_env = os.environ.get("REDIS_URL")
    if kafka_env and redis_env:
        yield Services(kafka_env, redis_env, "environment")
        return
    # One of the two from the environment still wins; the other comes from below.
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with contextlib.ExitStack() as containers:
            try:
                kafka = containers.enter_context(KafkaContainer().with_kraft())
                redis_container = containers.enter_context(RedisContainer())
                host = redis_container.get_container_host_ip()
                port = redis_container.get_exposed_port(6379)
            except Exception as error:  # an engine that answers ping can still fail to run
                _unavailable(f"testcontainers: {error}")
            yield Services(
                kafka_env or kafka.get_bootstrap_server(),
                redis_env or f"redis://{host}:{port}/0",
                "testcontainers",
            )
        return
    from scripts.services import ServiceError, start_services

    try:
        urls = start_services()
    except ServiceError as error:
        _unavailable(f"local services (scripts/services.py): {error}")
    yield Services(
        kafka_env or urls.kafka_bootstrap_servers,
        redis_env or urls.redis_url,
        "local services",
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(services: Services) -> str:
    return services.kafka_bootstrap


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis_url


@pytest.fixture
def unique_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create topics only this test sees: `unique_topic("declarations", partitions=4)`."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    created: list[str] = []

    def create(name_hint: str, partitions: int = 1) -> str:
        name = f"test-{name_hint}-{uuid.uuid4().hex[:10]}"
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    yield create
    # Best effort: the names are unique, so a leftover cannot leak into another test.
    with contextlib.suppress(Exception):
        admin.delete_topics(created)
    admin.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix only this test uses; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    remove_keys(redis_url, prefix)


@pytest.fixture(scope="module")
def night() -> Night:
    """The 2024 night built from the data files (its register, exit poll and declarations)."""
    return build_night(DATA_DIR)


@pytest.fixture
def pipeline(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, unique_topic: Callable[..., str]
) -> Pipeline:
    """A pipeline of this test's own: topics, Redis prefix and consumer group."""
    return new_pipeline(kafka_bootstrap, redis_url, redis_prefix, unique_topic)
