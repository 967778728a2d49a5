"""Where the integration tests get Kafka and Redis, without starting anything: the choice of
path, the reason when there is none, and the containers' configuration on pinned images."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testcontainers.core.container
import testcontainers.core.docker_client

from scripts.services import KAFKA_VERSION, Paths, render_properties
from streams.settings import Settings
from tests.conftest import PROJECT_ROOT
from tests.integration import containers, service_choice
from tests.integration.containers import (
    CONTAINER_OWN,
    KAFKA_IMAGE,
    REDIS_IMAGE,
    ApacheKafkaContainer,
    broker_env,
    env_name,
    redis_container,
    start_script,
)
from tests.integration.helpers import free_port
from tests.integration.service_choice import (
    NO_DOCKER,
    NO_SERVICES,
    Plan,
    choose_services,
    must_have_services,
    require_own,
    unavailable,
)

EVERY_TOOL = ("java", "mvn", "redis-server", "apt-get")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Local services on free ports with a run folder (and jars) of their own: none running."""
    return Settings(
        run_dir=tmp_path / "run",
        kafka_libs_dir=None,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """`tools("java", "mvn")`: only those are on the PATH."""

    def on_path(*present: str) -> None:
        monkeypatch.setattr(
            shutil, "which", lambda name: f"/usr/bin/{name}" if name in present else None
        )

    return on_path


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], list[bool]]:
    """`docker(True)`: an engine answers; the list returned records each probe."""

    def engine(answers: bool) -> list[bool]:
        probes: list[bool] = []

        def probe() -> bool:
            probes.append(answers)
            return answers

        monkeypatch.setattr(service_choice, "docker_answers", probe)
        return probes

    return engine


@pytest.fixture
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # test.sh exports ELECTION_REQUIRE_SERVICES=1 for the suite that runs these very tests.
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ELECTION_REQUIRE_SERVICES", raising=False)


# ---- choosing the path ----


def test_addresses_in_the_environment_are_used_without_looking_further(
    settings: Settings, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools()
    probes = docker(True)
    env = {
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
        "ELECTION_REDIS_URL": "redis://cache:6379/0",
    }
    plan = choose_services(env, settings)
    assert plan == Plan("environment", "broker:9092", "redis://cache:6379/0")
    assert probes == []


def test_the_prefixed_names_win_over_the_old_ones(settings: Settings) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "old:9092",
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": "new:9092",
        "REDIS_URL": "redis://old:6379/0",
        "ELECTION_REDIS_URL": "redis://new:6379/0",
    }
    assert choose_services(env, settings) == Plan("environment", "new:9092", "redis://new:6379/0")


def test_the_local_services_come_before_docker(
    settings: Settings, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools(*EVERY_TOOL)
    probes = docker(True)
    assert choose_services({}, settings) == Plan("local services")
    assert probes == [], "Docker was asked although the local services can start"


def test_one_address_from_the_environment_is_kept_and_the_other_comes_from_below(
    settings: Settings, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools()
    docker(True)
    plan = choose_services({"ELECTION_REDIS_URL": "redis://cache:6379/0"}, settings)
    assert plan == Plan("testcontainers", None, "redis://cache:6379/0")


@pytest.mark.parametrize(
    "missing",
    [("java",), ("mvn",), ("redis-server", "apt-get")],
    ids=["no-java", "no-maven", "no-redis"],
)
def test_without_a_local_tool_a_docker_engine_is_used(
    missing: tuple[str, ...],
    settings: Settings,
    tools: Callable[..., None],
    docker: Callable[[bool], list[bool]],
) -> None:
    tools(*(name for name in EVERY_TOOL if name not in missing))
    docker(True)
    assert choose_services({}, settings) == Plan("testcontainers")


def test_maven_is_not_needed_once_the_jars_are_fetched(
    settings: Settings, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools("java", "redis-server")
    docker(False)
    marker = Paths.of(settings).kafka_marker
    marker.parent.mkdir(parents=True)
    marker.touch()
    assert choose_services({}, settings) == Plan("local services")


def test_a_port_someone_else_holds_sends_the_tests_to_docker(
    tmp_path: Path, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools(*EVERY_TOOL)
    docker(True)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        settings = Settings(
            run_dir=tmp_path / "run",
            kafka_libs_dir=None,
            kafka_port=other.getsockname()[1],
            kafka_controller_port=free_port(),
            redis_port=free_port(),
        )
        assert choose_services({}, settings) == Plan("testcontainers")


def test_with_nothing_there_is_one_reason_naming_every_way_out(
    settings: Settings, tools: Callable[..., None], docker: Callable[[bool], list[bool]]
) -> None:
    tools()
    docker(False)
    plan = choose_services({}, settings)
    assert plan.source is None
    assert plan.reason.startswith(NO_SERVICES)
    for cause in ("java not found", "mvn not found", "redis-server not found", NO_DOCKER):
        assert cause in plan.reason
    for way_out in (
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS",
        "ELECTION_REDIS_URL",
        "Java 17+",
        "Maven",
        "Docker",
    ):
        assert way_out in NO_SERVICES


# ---- skip here, fail in CI ----


@pytest.mark.parametrize(
    ("env", "required"),
    [
        ({}, False),
        ({"CI": ""}, False),
        ({"CI": "0"}, False),
        ({"CI": "false"}, False),
        ({"CI": "FALSE"}, False),
        ({"ELECTION_REQUIRE_SERVICES": "0"}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"ELECTION_REQUIRE_SERVICES": "1"}, True),
    ],
)
def test_unavailable_fails_where_services_are_required_and_skips_elsewhere(
    env: dict[str, str], required: bool
) -> None:
    assert must_have_services(env) is required
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome) as raised:
        unavailable("the reason", env)
    assert raised.value.msg == "the reason"


def test_without_java_a_test_with_a_broker_of_its_own_says_why_it_cannot_run(
    settings: Settings, tools: Callable[..., None], outside_ci: None
) -> None:
    tools("mvn", "redis-server")
    with pytest.raises(pytest.skip.Exception) as raised:
        require_own(settings, "a Kafka broker", kafka=True)
    reason = str(raised.value.msg)
    assert "a Kafka broker of its own" in reason
    assert "scripts/services.py" in reason
    assert "java not found" in reason


def test_in_ci_a_test_with_a_broker_of_its_own_fails_without_java(
    settings: Settings,
    tools: Callable[..., None],
    outside_ci: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tools("mvn", "redis-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="java not found"):
        require_own(settings, "a Kafka broker", kafka=True)


def test_a_redis_of_its_own_needs_no_java(
    settings: Settings, tools: Callable[..., None], outside_ci: None
) -> None:
    tools("redis-server")
    require_own(settings, "a redis-server", redis=True)
    tools("java", "mvn")
    with pytest.raises(pytest.skip.Exception, match="redis-server not found"):
        require_own(settings, "a redis-server", redis=True)


@pytest.mark.parametrize("answers", [True, False])
def test_docker_answers_asks_the_engine_testcontainers_finds(
    answers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Client:
        def __init__(self, **options: object) -> None:
            if not answers:
                raise ConnectionError("no engine")
            self.client = self

        def ping(self) -> bool:
            return True

    monkeypatch.setattr(testcontainers.core.docker_client, "DockerClient", Client)
    assert service_choice.docker_answers() is answers


# ---- the containers ----


def test_the_images_are_pinned() -> None:
    # The broker the local services fetch: one Kafka version on either path.
    assert f"apache/kafka:{KAFKA_VERSION}" == KAFKA_IMAGE
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", KAFKA_IMAGE)
    assert re.fullmatch(r"redis:7\.\d+\.\d+", REDIS_IMAGE)


def convert_key(name: str) -> str:
    """The apache/kafka image's ConvertKey (docker/resources/utility), for the round trip."""
    name = re.sub(r"[^_]_[^_]", lambda m: m.group(0).replace("_", "."), name)
    return name.replace("___", "-").replace("__", "_").lower()


@pytest.mark.parametrize("key", ["num.partitions", "log.segment.bytes", "a_b.c-d"])
def test_env_name_is_the_images_conversion_reversed(key: str) -> None:
    assert convert_key(env_name(key).removeprefix("KAFKA_")) == key


def test_the_container_broker_has_the_local_brokers_configuration() -> None:
    env = broker_env()
    local = render_properties(Settings.model_construct(), Path("/unused"))
    properties = dict(
        line.split("=", 1) for line in local.splitlines() if "=" in line and line[0] != "#"
    )
    for key, value in properties.items():
        if key not in CONTAINER_OWN:
            assert env[env_name(key)] == value, key
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    # Its own listeners: every one has a protocol, and the advertised ones come at start.
    listeners = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    mapped = {
        entry.split(":")[0] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    }
    assert listeners == mapped == {"PLAINTEXT", "BROKER", "CONTROLLER"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert "KAFKA_ADVERTISED_LISTENERS" not in env and "KAFKA_LOG_DIRS" not in env


def test_the_start_script_advertises_the_mapped_port() -> None:
    script = start_script("localhost", 32771)
    assert "export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:32771,BROKER://" in script
    assert script.rstrip().endswith("exec /etc/kafka/docker/run")


class NoEngine:
    """Stands in for testcontainers' DockerClient, which connects as it is made."""

    def __init__(self, **options: object) -> None:
        pass


def test_the_kafka_container_waits_for_its_address_then_for_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(testcontainers.core.container, "DockerClient", NoEngine)
    steps: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        testcontainers.core.container.DockerContainer,
        "start",
        lambda self: steps.append(("started", self.image, dict(self.env), self._command)),
    )
    monkeypatch.setattr(ApacheKafkaContainer, "get_container_host_ip", lambda self: "localhost")
    monkeypatch.setattr(ApacheKafkaContainer, "get_exposed_port", lambda self, port: 32771)
    monkeypatch.setattr(
        ApacheKafkaContainer,
        "copy_into_container",
        lambda self, data, path, mode=0o644: steps.append(("copied", path, data, mode)),
    )
    monkeypatch.setattr(
        containers.LogMessageWaitStrategy,
        "wait_until_ready",
        lambda strategy, target: steps.append(("waited", strategy._message.pattern)),
    )
    kafka = ApacheKafkaContainer().start()
    assert kafka.ports == {str(containers.KAFKA_PORT): None}
    (_, image, env, command), script, ready, waited = steps
    assert image == KAFKA_IMAGE and env == broker_env()
    assert containers.SCRIPT_READY in command[-1] and containers.START_SCRIPT in command[-1]
    assert script == (
        "copied",
        containers.START_SCRIPT,
        start_script("localhost", 32771).encode(),
        0o755,
    )
    assert ready[:2] == ("copied", containers.SCRIPT_READY)
    assert waited == ("waited", containers.BROKER_RUNNING)
    assert kafka.get_bootstrap_server() == "localhost:32771"


def test_the_redis_container_is_the_pinned_image_with_the_nights_persistence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(testcontainers.core.container, "DockerClient", NoEngine)
    redis = redis_container()
    assert redis.image == REDIS_IMAGE
    assert redis._command == "redis-server --appendonly yes --appendfsync everysec"


def test_no_deprecated_testcontainers_module_is_imported() -> None:
    """testcontainers 4.15 moved its modules under testcontainers.community and warns on the
    old paths (testcontainers.kafka, testcontainers.redis)."""

    def imports(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-W",
                "error:testcontainers:DeprecationWarning",
                "-c",
                f"import {module}",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert imports("testcontainers.redis").returncode != 0, "the check would see nothing"
    done = imports("tests.integration.containers")
    assert done.returncode == 0, done.stderr
