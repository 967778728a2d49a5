"""deploy/compose agrees with the settings: services, ports, environment names and the image."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scripts.services import KAFKA_VERSION
from streams.settings import ENV_PREFIX, Settings
from tests.integration.containers import KAFKA_IMAGE, REDIS_IMAGE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
SETTING_NAMES = frozenset(f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields)
WORKERS = ("worker-1", "worker-2")
WORKER_COMMAND = "python -m faust -A streams.worker worker -l info --web-host 0.0.0.0"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return loaded


def env_file_names(text: str) -> dict[str, str | None]:
    """Names an env file sets (value) or offers commented out (None), in order."""
    names: dict[str, str | None] = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip()):
            names[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line.strip()):
            names.setdefault(match[1], None)
    return names


def not_settings(names: set[str] | dict[str, Any]) -> set[str]:
    return set(names) - SETTING_NAMES


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each `ports` entry."""
    rows = []
    for entry in service.get("ports", []):
        *host, container = str(entry).split(":")
        address = host[0] if len(host) == 2 else "0.0.0.0"
        rows.append((address, int(host[-1]), int(container)))
    return rows


def test_the_services_of_a_newsroom() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "redis", *WORKERS, "web"}
    assert all("healthcheck" in service for service in services.values())
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["redis"]["image"].startswith("redis:7")


def test_the_checker_catches_a_misspelt_name() -> None:
    assert not_settings({"ELECTON_ID": "x", "ELECTION_ELECTION_ID": "y"}) == {"ELECTON_ID"}
    assert env_file_names("# comment\nA=1\n# B=\n\n") == {"A": "1", "B": None}


@pytest.mark.parametrize("name", WORKERS)
def test_every_variable_given_to_a_worker_is_a_setting(name: str) -> None:
    worker = compose()["services"][name]
    assert not_settings(environment(worker)) == set()
    assert worker["env_file"] in (".env", [".env"])
    example = env_file_names((COMPOSE_DIR / "election.env.example").read_text())
    assert not_settings(example) == set()
    # compose.yaml's environment wins over the env file: the file must not pretend to set them.
    assert set(example) & set(environment(worker)) == set()


def test_the_env_file_example_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_file_names((COMPOSE_DIR / "election.env.example").read_text()).items():
        if value is not None:
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.topic_declarations == Settings.model_fields["topic_declarations"].default
    assert settings.topic_partitions >= len(WORKERS), "a worker would have no partition"


def test_workers_run_the_image_and_command_of_the_dockerfile() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd is not None
    assert " ".join(yaml.safe_load(cmd[1])) == WORKER_COMMAND
    for name in WORKERS:
        worker = compose()["services"][name]
        assert " ".join(worker["command"]) == WORKER_COMMAND
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE_DIR / worker["build"]["context"] / "deploy" / "Dockerfile").is_file()


def test_dockerfile_environment_is_settings_or_named_runtime_variables() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    names = {
        name
        for line in re.findall(r"^ENV (.*)$", dockerfile, flags=re.MULTILINE)
        for name in re.findall(r"([A-Z_]+)=", line)
    }
    runtime = {n for n in names if n.startswith(("PYTHON", "PIP_"))} | {"APP_DATADIR"}
    assert not_settings(names - runtime) == set()


def test_web_port_is_the_same_everywhere() -> None:
    services = compose()["services"]
    ports = set()
    for name in WORKERS:
        worker = services[name]
        port = int(environment(worker)["ELECTION_WEB_PORT"])
        ports.add(port)
        assert [int(p) for p in worker["expose"]] == [port]
        health = " ".join(worker["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health" in health
    (port,) = ports
    nginx = (COMPOSE_DIR / "nginx.conf").read_text()
    upstreams = re.findall(r"^\s*server ([\w-]+):(\d+)", nginx, flags=re.MULTILINE)
    assert upstreams == [(name, str(port)) for name in WORKERS]
    assert re.search(rf"^\s*listen {port};", nginx, flags=re.MULTILINE)
    web = services["web"]
    assert [(h, c) for _, h, c in published(web)] == [(port, port)]
    assert f"http://127.0.0.1:{port}/live" in web["healthcheck"]["test"]
    assert web["volumes"] == ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]


def test_workers_reach_kafka_and_redis_where_those_listen() -> None:
    services = compose()["services"]
    kafka = environment(services["kafka"])
    advertised = dict(
        listener.split("://", 1) for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    inter = kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one combined node
    for name in WORKERS:
        env = environment(services[name])
        assert env["ELECTION_KAFKA_BOOTSTRAP_SERVERS"] == advertised[inter]
        redis = urlsplit(env["ELECTION_REDIS_URL"])
        assert redis.hostname == "redis" and redis.port == 6379
        assert set(services[name]["depends_on"]) == {"kafka", "redis"}
        assert all(
            dep["condition"] == "service_healthy" for dep in services[name]["depends_on"].values()
        )
    # Tools on the host (election-replay, alerts tail, election-reset) work with the defaults.
    # The defaults, whatever this run's environment points the suite at.
    fields = Settings.model_fields
    host_kafka = advertised["HOST"]
    assert host_kafka == fields["kafka_bootstrap_servers"].default
    assert (
        "127.0.0.1",
        int(host_kafka.rsplit(":", 1)[1]),
        int(host_kafka.rsplit(":", 1)[1]),
    ) in published(services["kafka"])
    default_redis = urlsplit(fields["redis_url"].default)
    assert ("127.0.0.1", default_redis.port, 6379) in published(services["redis"])


def test_workers_create_topics_with_the_copies_the_brokers_can_hold() -> None:
    services = compose()["services"]
    brokers = [s for s in services.values() if s.get("image", "").startswith("apache/kafka:")]
    kafka = environment(services["kafka"])
    for name in WORKERS:
        env = environment(services[name])
        copies = int(env["ELECTION_TOPIC_REPLICATION_FACTOR"])
        assert copies == int(kafka["KAFKA_DEFAULT_REPLICATION_FACTOR"]) <= len(brokers)
        assert int(env["ELECTION_MIN_INSYNC_REPLICAS"]) == int(kafka["KAFKA_MIN_INSYNC_REPLICAS"])
        assert int(env["ELECTION_MIN_INSYNC_REPLICAS"]) <= copies


def test_redis_keeps_an_append_only_file_synced_every_second() -> None:
    redis = compose()["services"]["redis"]
    command = " ".join(shlex.quote(str(part)) for part in redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    # Each rewrite and snapshot forks Redis: rarely, never once a minute under load.
    assert "--auto-aof-rewrite-min-size 1gb" in command and "--save '3600 1'" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "kafka-data" in compose()["volumes"] and "redis-data" in compose()["volumes"]


def test_the_env_file_with_secrets_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/compose/.env" in ignored


def test_compose_kubernetes_and_the_test_containers_run_the_same_images() -> None:
    services = compose()["services"]
    kafka = next(s for s in services.values() if s.get("image", "").startswith("apache/kafka:"))
    redis = next(s for s in services.values() if s.get("image", "").startswith("redis:"))
    assert (kafka["image"], redis["image"]) == (KAFKA_IMAGE, REDIS_IMAGE)
    k8s_redis = yaml.safe_load_all((COMPOSE_DIR.parent / "k8s" / "redis.yaml").read_text())
    (statefulset,) = [d for d in k8s_redis if d and d["kind"] == "StatefulSet"]
    images = {c["image"] for c in statefulset["spec"]["template"]["spec"]["containers"]}
    assert images == {REDIS_IMAGE}
