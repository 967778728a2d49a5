"""Where the integration tests get Kafka and Redis, and what they say when they cannot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NoReturn

import pytest

from scripts.services import JAVA_ADVICE, MVN_ADVICE, Paths, find_problems
from streams.settings import Settings

Source = Literal["environment", "local services", "testcontainers"]

# The settings read the ELECTION_-prefixed name first and still accept the old one: so do we.
KAFKA_VARIABLES = ("ELECTION_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
REDIS_VARIABLES = ("ELECTION_REDIS_URL", "REDIS_URL")

NO_SERVICES = (
    "no Kafka/Redis for the integration tests: set ELECTION_KAFKA_BOOTSTRAP_SERVERS and "
    "ELECTION_REDIS_URL, "
    "or install Java 17+ and Maven (the local services), or run a Docker engine (testcontainers)"
)
NO_DOCKER = "Docker: no engine answered"


@dataclass(frozen=True)
class Plan:
    """The path chosen; `kafka`/`redis` are what the environment already gives."""

    source: Source | None
    kafka: str | None = None
    redis: str | None = None
    reason: str = ""  # why no path, when `source` is None


def must_have_services(env: Mapping[str, str]) -> bool:
    """Where services are required (test.sh, CI) a missing one fails instead of skipping."""
    ci = env.get("CI", "").strip().lower()
    return env.get("ELECTION_REQUIRE_SERVICES") == "1" or ci not in {"", "0", "false"}


def unavailable(reason: str, env: Mapping[str, str] | None = None) -> NoReturn:
    """Fail where services are required; skip on a developer's machine that lacks them."""
    if must_have_services(os.environ if env is None else env):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def docker_answers() -> bool:
    try:
        # testcontainers' own client: it finds the engine as the containers will (DOCKER_HOST,
        # ~/.testcontainers.properties, the current docker context).
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient(timeout=2).client.ping())
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False


def _given(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[name] for name in names if env.get(name)), None)


def choose_services(env: Mapping[str, str], settings: Settings) -> Plan:
    """Environment, else the local services, else Docker, else no path and the reason why.

    The local services come before Docker: they are the broker and Redis the fault and
    security tests start their own copies of, so one machine runs one Kafka build and one
    broker configuration throughout, with nothing to pull. Docker is for a machine without
    Java and Maven. One address from the environment is kept; the other comes from below.
    """
    kafka, redis = _given(env, KAFKA_VARIABLES), _given(env, REDIS_VARIABLES)
    if kafka and redis:
        return Plan("environment", kafka, redis)
    problems = find_problems(settings, Paths.of(settings))
    if not problems:
        return Plan("local services", kafka, redis)
    if docker_answers():
        return Plan("testcontainers", kafka, redis)
    return Plan(None, kafka, redis, reason=f"{NO_SERVICES} ({'; '.join([*problems, NO_DOCKER])})")


def own_service_problems(settings: Settings, *, kafka: bool, redis: bool) -> list[str]:
    """What stops scripts/services.py from starting a broker or a redis-server of a test's own."""
    problems = []
    if kafka:
        if shutil.which("java") is None:
            problems.append(f"java not found: {JAVA_ADVICE}")
        # The test's broker uses the shared jars: Maven only fetches them the first time.
        if not Paths.of(settings).kafka_marker.exists() and shutil.which("mvn") is None:
            problems.append(f"mvn not found: {MVN_ADVICE}")
    if redis and shutil.which("redis-server") is None and shutil.which("apt-get") is None:
        problems.append("redis-server not found and no apt-get to install it: install Redis 7")
    return problems


def require_own(settings: Settings, what: str, *, kafka: bool = False, redis: bool = False) -> None:
    """For a test that kills, restarts or secures `what` of its own: it starts it through
    scripts/services.py, since neither a shared service nor a container can stand in."""
    problems = own_service_problems(settings, kafka=kafka, redis=redis)
    if problems:
        unavailable(
            f"this test starts {what} of its own through scripts/services.py (a shared "
            f"service or a container cannot stand in): {'; '.join(problems)}"
        )
