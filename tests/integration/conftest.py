"""Integration fixtures: a real Kafka broker and a real Redis, and per-test isolation on them.

Where they come from is decided in one place, tests/integration/service_choice.py: the
environment's addresses; else the project's local services (scripts/services.py: Java and
Maven); else testcontainers on pinned images (tests/integration/containers.py) when a
Docker engine answers. With none of them, integration tests skip with the one reason;
with ELECTION_REQUIRE_SERVICES=1 or CI set they fail with it instead, never skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from scripts.night_builder import Night, build_night
from scripts.services import ServiceError, start_services
from streams.settings import get_settings
from tests.integration.pipeline import DATA_DIR, Pipeline, new_pipeline, remove_keys
from tests.integration.service_choice import choose_services, unavailable


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str
    source: str


HERE = Path(__file__).resolve().parent
NOT_STARTED = "no Kafka/Redis for the integration tests, they did not start"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test under tests/integration needs the real services: `-m "not integration"`
    # leaves them out without each file having to say so.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    settings = get_settings()
    plan = choose_services(os.environ, settings)
    if plan.source is None:
        unavailable(plan.reason)
    if plan.source == "environment":
        assert plan.kafka and plan.redis
        yield Services(plan.kafka, plan.redis, plan.source)
    elif plan.source == "local services":
        try:
            urls = start_services(settings)
        except ServiceError as error:
            unavailable(f"{NOT_STARTED}: the local services (scripts/services.py): {error}")
        yield Services(
            plan.kafka or urls.kafka_bootstrap_servers, plan.redis or urls.redis_url, plan.source
        )
    else:
        from tests.integration.containers import containers_for

        with contextlib.ExitStack() as running:
            try:
                kafka, redis = running.enter_context(containers_for(plan.kafka, plan.redis))
            except Exception as error:  # an engine that answers a ping can still fail to run
                unavailable(f"{NOT_STARTED}: testcontainers: {error}")
            yield Services(kafka, redis, plan.source)


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
