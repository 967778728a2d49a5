"""Kafka and Redis in Docker for the integration tests (testcontainers), on pinned images."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from testcontainers.community.redis import RedisContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from scripts.services import KAFKA_VERSION, render_properties
from streams.settings import Settings

# The broker the local services fetch from Maven Central, as the Apache project's own image.
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
REDIS_IMAGE = "redis:7.4.8"

KAFKA_PORT = 9092  # clients on the host reach it through the port Docker maps
CLUSTER_ID = "Eyd9qKLzS6qGzS2dOAF8Qg"  # any base64 UUID: each container is formatted anew
START_SCRIPT = "/tmp/election-start.sh"
SCRIPT_READY = "/tmp/election-start.ready"
# Logged once the broker has caught up with the metadata log and serves clients.
BROKER_RUNNING = r"Transitioning from RECOVERY to RUNNING"
START_TIMEOUT_S = 120
# Where the container listens and what it advertises are its own (and its data stays in the
# image's default folder); the rest of the local broker's server.properties is applied as it
# is, so both paths run the same broker.
CONTAINER_OWN = frozenset(
    {
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "controller.quorum.voters",
        "log.dirs",
    }
)


def env_name(key: str) -> str:
    """The apache/kafka image's variable for a broker property (its ConvertKey, reversed)."""
    return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def broker_env() -> dict[str, str]:
    """The container's environment: the local broker's properties, and listeners of its own."""
    # Defaults only (no environment read): no SASL listener, whatever the shell has set.
    rendered = render_properties(Settings.model_construct(), Path("/unused"))
    env: dict[str, str] = {}
    for line in rendered.splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#") and key.strip() not in CONTAINER_OWN:
            env[env_name(key.strip())] = value.strip()
    # PLAINTEXT for clients on the host; BROKER for the broker's own connections inside.
    env.update(
        CLUSTER_ID=CLUSTER_ID,
        KAFKA_LISTENERS=(
            f"PLAINTEXT://0.0.0.0:{KAFKA_PORT},BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094"
        ),
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
        KAFKA_HEAP_OPTS="-Xms256m -Xmx512m",
    )
    return env


def start_script(host: str, port: int) -> str:
    """What the container runs once it knows the address clients on the host reach it at."""
    advertised = f"PLAINTEXT://{host}:{port},BROKER://localhost:9093"
    return (
        "#!/bin/bash\n"
        f"export KAFKA_ADVERTISED_LISTENERS={shlex.quote(advertised)}\n"
        "exec /etc/kafka/docker/run\n"
    )


class ApacheKafkaContainer(DockerContainer):
    """One KRaft node (broker and controller) of the apache/kafka image.

    testcontainers' KafkaContainer drives Confluent's cp-kafka images only: it runs their
    scripts, and its KRaft check refuses a tag below 7.0.0, so 4.1.1. This does what
    testcontainers-java's KafkaContainer does for apache/kafka.
    """

    def __init__(self, image: str = KAFKA_IMAGE) -> None:
        super().__init__(image, env=broker_env(), ports=[KAFKA_PORT])
        # The address to advertise is known only once Docker has mapped the port: the
        # container waits for the script that carries it.
        self.with_command(
            [
                "sh",
                "-c",
                f"while [ ! -f {SCRIPT_READY} ]; do sleep 0.1; done; exec bash {START_SCRIPT}",
            ]
        )

    def start(self) -> Self:
        super().start()
        script = start_script(self.get_container_host_ip(), self.get_exposed_port(KAFKA_PORT))
        self.copy_into_container(script.encode(), START_SCRIPT, 0o755)
        # A second file, copied once the first is whole: the script never runs half-written.
        self.copy_into_container(b"", SCRIPT_READY)
        waiting = LogMessageWaitStrategy(BROKER_RUNNING).with_startup_timeout(START_TIMEOUT_S)
        waiting.wait_until_ready(self)
        return self

    def get_bootstrap_server(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(KAFKA_PORT)}"


def redis_container() -> RedisContainer:
    # The night's persistence, as the local services and the compose file run Redis.
    return RedisContainer(REDIS_IMAGE).with_command(
        "redis-server --appendonly yes --appendfsync everysec"
    )


@contextlib.contextmanager
def containers_for(kafka: str | None, redis: str | None) -> Iterator[tuple[str, str]]:
    """A container for whichever address is not given; both addresses, until the end."""
    with contextlib.ExitStack() as running:
        if kafka is None:
            kafka = running.enter_context(ApacheKafkaContainer()).get_bootstrap_server()
        if redis is None:
            container = running.enter_context(redis_container())
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            redis = f"redis://{host}:{port}/0"
        yield kafka, redis
