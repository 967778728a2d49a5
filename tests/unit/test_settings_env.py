"""Settings read ELECTION_* names, tolerate what Kubernetes injects, and still read old names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# Services a cluster may hold beside ours: Strimzi's for the Kafka in kafka.yaml, and names an
# operator could well choose, each of whose link variables lands on a setting's name.
OTHER_SERVICES = {
    "election-kafka-kafka-bootstrap": [9092, 9093],
    "election-kafka-kafka-brokers": [9090, 9091],
    "kafka": [9092],
    "election-redis": [6379],
    "election-kafka": [9092],
    "election": [80],
}


def manifest_services() -> dict[str, list[int]]:
    services: dict[str, list[int]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Service":
                ports = [int(p["port"]) for p in doc["spec"]["ports"]]
                services[doc["metadata"]["name"]] = ports
    return services


def service_link_variables(name: str, ports: list[int], ip: str) -> Iterator[tuple[str, str]]:
    """The variables the kubelet sets in a pod for one Service (docker-links style)."""
    stem = name.upper().replace("-", "_")
    yield f"{stem}_SERVICE_HOST", ip
    yield f"{stem}_SERVICE_PORT", str(ports[0])
    yield f"{stem}_PORT", f"tcp://{ip}:{ports[0]}"
    for port in ports:
        link = f"{stem}_PORT_{port}_TCP"
        yield link, f"tcp://{ip}:{port}"
        yield f"{link}_PROTO", "tcp"
        yield f"{link}_PORT", str(port)
        yield f"{link}_ADDR", ip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{ENV_PREFIX}{name}".upper(), raising=False)
    return monkeypatch


def test_the_manifests_have_services_whose_links_land_on_settings() -> None:
    services = manifest_services()
    assert {"redis", "election-web"} <= set(services)
    names = {n for s, p in services.items() for n, _ in service_link_variables(s, p, "10.0.0.1")}
    # REDIS_PORT is the old name of a setting, ELECTION_WEB_PORT the new name of another.
    assert {"REDIS_PORT", "ELECTION_WEB_PORT"} <= names


def test_kubernetes_service_links_change_no_setting(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = Settings().model_dump()
    services = manifest_services() | OTHER_SERVICES
    for number, (service, ports) in enumerate(sorted(services.items())):
        for name, value in service_link_variables(service, ports, f"10.96.0.{number + 10}"):
            clean_env.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        settings = Settings()
    assert settings.model_dump() == expected
    ignored = [r.getMessage() for r in caplog.records if "service link" in r.getMessage()]
    assert any(m.startswith("ignored REDIS_PORT=tcp://") for m in ignored), ignored
    assert any(m.startswith("ignored ELECTION_WEB_PORT=tcp://") for m in ignored), ignored


def test_a_port_given_as_a_number_is_still_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ELECTION_WEB_PORT", "7077")
    clean_env.setenv("ELECTION_REDIS_PORT", "6380")
    settings = Settings()
    assert (settings.web_port, settings.redis_port) == (7077, 6380)


def test_prefixed_names_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ELECTION_REDIS_URL", "redis://redis:6379/3")
    clean_env.setenv("ELECTION_ELECTION_ID", "parl.2029-05-03")
    clean_env.setenv("ELECTION_WEBHOOK_URLS", '["https://example.org/hook"]')
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/3"
    assert settings.election_id == "parl.2029-05-03"
    assert settings.webhook_urls == ["https://example.org/hook"]


def test_old_names_still_work_for_a_release_with_a_warning(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("REDIS_URL", "redis://old:6379/1")
    clean_env.setenv("BATCH_SIZE", "17")
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        settings = Settings()
    assert (settings.redis_url, settings.batch_size) == ("redis://old:6379/1", 17)
    messages = [r.getMessage() for r in caplog.records]
    assert any("REDIS_URL is deprecated" in m and "ELECTION_REDIS_URL" in m for m in messages)
    assert any("BATCH_SIZE is deprecated" in m for m in messages)


def test_the_prefixed_name_wins_over_the_old_one_silently(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("BATCH_SIZE", "17")
    clean_env.setenv("ELECTION_BATCH_SIZE", "23")
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        assert Settings().batch_size == 23
    assert not [r for r in caplog.records if "BATCH_SIZE" in r.getMessage()]


def test_names_that_are_not_settings_are_left_alone(clean_env: pytest.MonkeyPatch) -> None:
    # ELECTION_REQUIRE_SERVICES belongs to the test suite, ELECTION_ID is the old name of
    # election_id: neither may be taken for a setting called require_services or id.
    clean_env.setenv("ELECTION_REQUIRE_SERVICES", "1")
    assert Settings().election_id == "parl.2024-07-04"


def test_every_topic_setting_is_a_topic_kind_and_nothing_else() -> None:
    kinds = Settings.topic_kinds()
    settings = Settings()
    assert set(settings.output_topics()) < set(kinds)
    assert {"declarations", "dead_letter", "audit"} < set(kinds)
    # Each names a topic (a string setting), not how topics are made.
    assert all(isinstance(getattr(settings, f"topic_{kind}"), str) for kind in kinds)
