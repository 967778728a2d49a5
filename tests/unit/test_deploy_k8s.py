"""deploy/k8s renders to valid resources whose names, ports, topics and settings agree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.services import KAFKA_VERSION
from streams.connections import sentinel_url
from streams.pipeline.app import create_app
from streams.settings import ENV_PREFIX, Settings

app = create_app(Settings())

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SETTING_NAMES = frozenset(f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields)
WORKER_COMMAND = "python -m faust -A streams.worker worker -l info --web-host 0.0.0.0"
TOPIC_FIELDS = ("declarations", "dead_letter", "results", "state", "alerts", "newsroom", "audit")


def render() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/k8s` applies: the kustomization's files, in order."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc is not None]
    for doc in docs:
        doc["metadata"].setdefault("namespace", kustomization["namespace"])
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in render() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def config() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "election-config")["data"]
    return data


def settings_of_config(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a worker pod reads from the ConfigMap (secrets aside)."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in config().items():
        monkeypatch.setenv(name, value)
    return Settings()


def worker_container() -> dict[str, Any]:
    deployment = one("Deployment", "election-worker")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def worker_env_names() -> set[str]:
    container = worker_container()
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, "only the ConfigMap is read whole; secrets key by key"
        names |= set(one("ConfigMap", ref["name"])["data"])
    return names


def kafka_topics() -> dict[str, dict[str, Any]]:
    topics = {}
    for doc in render():
        if doc["kind"] == "KafkaTopic":
            name = doc["spec"].get("topicName", doc["metadata"]["name"])
            assert name not in topics, f"two KafkaTopics for {name}"
            topics[name] = doc
    return topics


def test_every_manifest_is_rendered_and_valid() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    docs = render()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"])
    namespaces = {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {one("Namespace")["metadata"]["name"]}
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "Deployment", "Service", "StatefulSet"} <= kinds


def test_kubectl_renders_the_same_resources() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("ELECTION_REQUIRE_SERVICES") == "1":
            pytest.fail("kubectl is not on PATH: CI checks the manifests with kubectl kustomize")
        pytest.skip("kubectl is not on PATH")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    by_kubectl = [doc for doc in yaml.safe_load_all(rendered) if doc is not None]

    def names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in docs}

    assert names(by_kubectl) == names(render())
    assert {d["metadata"].get("namespace") for d in by_kubectl if d["kind"] != "Namespace"} == {
        one("Namespace")["metadata"]["name"]
    }


def test_no_pod_is_given_service_link_variables() -> None:
    # Kubernetes would set REDIS_PORT=tcp://... in every pod for the redis Service.
    for kind in ("Deployment", "StatefulSet"):
        for doc in (d for d in render() if d["kind"] == kind):
            assert doc["spec"]["template"]["spec"]["enableServiceLinks"] is False, doc


def test_the_checker_catches_a_misspelt_name() -> None:
    assert {"ELECTON_ID", "ELECTION_ELECTION_ID"} - SETTING_NAMES == {"ELECTON_ID"}


def test_every_variable_given_to_a_worker_is_a_setting() -> None:
    assert worker_env_names() - SETTING_NAMES == set()


def test_the_config_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of_config(monkeypatch)
    assert settings.web_host == "0.0.0.0"
    assert settings.kafka_security_protocol == "SASL_SSL"


def test_workers_run_the_image_command_and_never_outnumber_the_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_of_config(monkeypatch)
    deployment = one("Deployment", "election-worker")
    assert 1 <= deployment["spec"]["replicas"] <= settings.topic_partitions
    assert " ".join(worker_container()["command"]) == WORKER_COMMAND
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert cmd is not None and " ".join(yaml.safe_load(cmd[1])) == WORKER_COMMAND
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    budget = one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_web_port_probes_and_service_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of_config(monkeypatch)
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"web": settings.web_port}
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/health"
    assert probes["livenessProbe"]["path"] == "/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/live"
    for probe in [*probes.values(), container["startupProbe"]["httpGet"]]:
        assert probe["port"] in ("web", settings.web_port)
    # /health waits up to 4 s for a Kafka connection and 4 s for its answer.
    assert container["readinessProbe"]["timeoutSeconds"] >= 9
    service = one("Service", "election-web")
    deployment = one("Deployment", "election-worker")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ("web", settings.web_port)


def test_kafka_is_strimzi_kraft_on_the_local_brokers_version() -> None:
    kafka = one("Kafka")
    pool = one("KafkaNodePool")
    assert kafka["spec"]["kafka"]["version"] == KAFKA_VERSION
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    broker = kafka["spec"]["kafka"]["config"]
    assert pool["spec"]["replicas"] >= broker["default.replication.factor"]
    assert broker["min.insync.replicas"] < broker["default.replication.factor"]
    assert broker["auto.create.topics.enable"] is False


def test_every_topic_of_the_app_has_a_kafka_topic(monkeypatch: pytest.MonkeyPatch) -> None:

    settings = settings_of_config(monkeypatch)
    kafka = one("Kafka")
    topics = kafka_topics()
    # The app a worker pod builds: the ConfigMap's topic names, partitions and copies in sync
    # (its TLS aside: the CA file is the pod's, and no broker is reached here).
    configured = create_app(settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"}))
    declared = {t.get_topic_name(): t for t in configured.night_topics.all}
    assert configured.conf.topic_partitions == settings.topic_partitions
    expected: dict[str, int] = {}
    for field in TOPIC_FIELDS:
        app_topic = declared[getattr(settings, f"topic_{field}")]
        expected[getattr(settings, f"topic_{field}")] = app_topic.partitions
        for key, value in (app_topic.config or {}).items():
            assert str(topics[getattr(settings, f"topic_{field}")]["spec"]["config"][key]) == str(
                value
            ), (field, key)
    expected[f"{settings.app_id}-__assignor-__leader"] = 1
    assert {name: t["spec"]["partitions"] for name, t in topics.items()} == expected
    assert topics[settings.topic_declarations]["spec"]["partitions"] == settings.topic_partitions
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert (
            topic["spec"]["replicas"]
            == kafka["spec"]["kafka"]["config"]["default.replication.factor"]
        )
        assert "retention.ms" in topic["spec"]["config"]


def test_workers_reach_kafka_through_strimzi_with_tls_and_scram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_of_config(monkeypatch)
    kafka = one("Kafka")
    name = kafka["metadata"]["name"]
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert settings.kafka_bootstrap_servers == f"{name}-kafka-bootstrap:{listener['port']}"
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    user = one("KafkaUser")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == name
    assert settings.kafka_sasl_username == user["metadata"]["name"]
    env = {item["name"]: item for item in worker_container()["env"]}
    password = env["ELECTION_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": user["metadata"]["name"], "key": "password"}
    # The cluster CA from Strimzi's Secret, where ELECTION_KAFKA_SSL_CAFILE says it is.
    spec = one("Deployment", "election-worker")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in worker_container()["volumeMounts"]}
    assert settings.kafka_ssl_cafile is not None
    mount = mounts[str(settings.kafka_ssl_cafile.parent)]
    secret = volumes[mount]["secret"]
    assert secret["secretName"] == f"{name}-cluster-ca-cert"
    assert {"key": "ca.crt", "path": settings.kafka_ssl_cafile.name} in secret["items"]


def test_workers_reach_redis_through_its_sentinels_with_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_of_config(monkeypatch)
    found = sentinel_url(settings.redis_url)
    assert found is not None, "the workers ask Sentinels for the primary"
    redis = one("StatefulSet", "redis")
    service = one("Service", redis["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"  # headless: a stable name per pod
    assert (
        service["spec"]["selector"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    # One Sentinel per pod, every pod named in the URL: losing one leaves a quorum of two.
    pods = [f"redis-{n}.{service['metadata']['name']}" for n in range(redis["spec"]["replicas"])]
    assert found.sentinels == [(pod, service_ports["sentinel"]) for pod in pods]
    assert redis["spec"]["replicas"] == 3
    containers = {c["name"]: c for c in redis["spec"]["template"]["spec"]["containers"]}
    (init,) = redis["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][-1]
    assert f"sentinel monitor {found.service} $primary {service_ports['redis']} 2" in script
    assert "sentinel auth-pass" in script and "announce-hostnames yes" in script
    ports = {p["name"]: p["containerPort"] for c in containers.values() for p in c["ports"]}
    assert ports == {"redis": 6379, "sentinel": 26379}
    assert service_ports == {"redis": 6379, "sentinel": 26379}
    args = " ".join(containers["redis"]["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    assert "--auto-aof-rewrite-min-size 1gb" in args and "--save 3600 1" in args
    assert "--requirepass $(ELECTION_REDIS_PASSWORD)" in args
    assert "--masterauth $(ELECTION_REDIS_PASSWORD)" in args  # a replica asks its primary
    worker_secret = {e["name"]: e for e in worker_container()["env"]}["ELECTION_REDIS_PASSWORD"]
    for container in (containers["redis"], init):
        redis_secret = {e["name"]: e for e in container["env"]}["ELECTION_REDIS_PASSWORD"]
        assert redis_secret["valueFrom"] == worker_secret["valueFrom"]
    assert any(m["mountPath"] == "/data" for m in containers["redis"]["volumeMounts"])


def test_topics_keep_the_copies_the_workers_are_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three copies, two in sync for a write: as the brokers, every KafkaTopic and the topics a
    worker would create itself, and as the failover tests ran the night."""
    settings = settings_of_config(monkeypatch)
    broker = one("Kafka")["spec"]["kafka"]["config"]
    assert settings.topic_replication_factor == broker["default.replication.factor"] == 3
    assert settings.min_insync_replicas == broker["min.insync.replicas"] == 2
    for name, topic in kafka_topics().items():
        assert topic["spec"]["replicas"] == settings.topic_replication_factor, name
        assert topic["spec"]["config"]["min.insync.replicas"] == settings.min_insync_replicas


def test_worker_memory_is_sized_from_the_measured_peak() -> None:
    """The request is at least twice the measured peak of a worker and its publisher process
    (one container runs both), the limit twice the request."""
    scaling = (ROOT / "docs" / "scaling.md").read_text()
    peak = re.search(
        r"Peak resident memory of a worker and its publisher process together: (\d+) MiB", scaling
    )
    assert peak is not None, "docs/scaling.md must state the measured figure"
    resources = worker_container()["resources"]

    def mib(quantity: str) -> int:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
        return int(number) * (1024 if unit == "Gi" else 1)

    request = mib(resources["requests"]["memory"])
    assert request >= 2 * int(peak[1])
    assert mib(resources["limits"]["memory"]) >= 2 * request
