"""The project's local cluster (three Kafka nodes, a Redis primary with two replicas under three
Sentinels), started through scripts/services.py on free ports of a test's own, to kill nodes of."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from kafka import KafkaAdminClient

from scripts.services import (
    ClusterNode,
    Paths,
    ServiceError,
    cluster_nodes,
    cluster_settings,
    cluster_urls,
    current_primary,
    port_in_use,
    start_cluster,
    stop_cluster,
)
from streams.connections import sync_redis_from_settings
from streams.settings import Settings, get_settings

T = TypeVar("T")

PORTS_PER_CLUSTER = 34  # ELECTION_CLUSTER_BASE_PORT + 1 .. + 33


def free_base_port() -> int:
    """A base port whose cluster ports nothing listens on (the shared cluster's, 19100, may be
    in use by someone's `election-services start --cluster`)."""
    rng = random.Random()
    for _ in range(200):
        # Below Linux's ephemeral ports (32768 up): there, a client's outgoing connection can
        # take a port between this check and a node binding it (CI: "kafka-2 ... Address
        # already in use" on 127.0.0.1:32812).
        base = rng.randrange(20_000, 32_700 - PORTS_PER_CLUSTER, 100)
        if not any(port_in_use(base + offset) for offset in range(1, PORTS_PER_CLUSTER)):
            return base
    raise AssertionError("no free range of ports for the test's cluster")


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """Poll `check` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


class LocalCluster:
    """A cluster under `root`; its jars are the project's own, fetched once."""

    def __init__(self, root: Path) -> None:
        self.settings = Settings(
            run_dir=root,
            kafka_libs_dir=Paths.of(get_settings()).kafka_libs,
            cluster_base_port=free_base_port(),
        )
        self.nodes = cluster_nodes(self.settings)
        found = cluster_urls(self.settings)
        self.bootstrap = found.kafka_bootstrap_servers
        self.redis_url = found.redis_url

    @property
    def client_settings(self) -> dict[str, str]:
        """The settings a worker gets on this cluster (addresses, copies, copies in sync)."""
        return cluster_settings(self.settings)

    def start(self) -> float:
        """Start what is not running and return the seconds until all of it answers."""
        began = time.monotonic()
        try:
            start_cluster(self.settings)
        except ServiceError as error:
            raise AssertionError(f"the test's cluster cannot start: {error}") from error
        return time.monotonic() - began

    def heal(self) -> float:
        """Back to full strength: every process running, every partition with three copies in
        sync. Returns the seconds it took."""
        began = time.monotonic()
        self.start()
        wait_for("every partition with all its copies in sync", self.fully_replicated, 120, 0.5)
        return time.monotonic() - began

    def stop(self) -> None:
        stop_cluster(self.settings)

    @contextlib.contextmanager
    def _admin(self) -> Iterator[KafkaAdminClient]:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            yield admin
        finally:
            admin.close()

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> the node id of the broker leading it now."""
        with self._admin() as admin:
            [described] = admin.describe_topics([topic])
        return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}

    def fully_replicated(self) -> bool:
        with self._admin() as admin:
            described = admin.describe_topics()
        return all(
            len(partition["isr_nodes"]) == len(self.nodes)
            for topic in described
            for partition in topic["partitions"]
        )

    def node(self, node_id: int) -> ClusterNode:
        return next(node for node in self.nodes if node.n == node_id)

    def kill_kafka(self, node_id: int) -> None:
        """kill -9 one broker (also a KRaft controller): no controlled shutdown."""
        node = self.node(node_id)
        pid = node.kafka_pid()
        assert pid is not None, f"kafka-{node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(f"kafka-{node_id} gone", lambda: node.kafka_pid() is None, 30)

    def redis_primary(self) -> ClusterNode:
        port = current_primary(self.settings)
        return next(node for node in self.nodes if node.settings.redis_port == port)

    def primary_port(self) -> int | None:
        return current_primary(self.settings)

    @contextlib.contextmanager
    def replicas_cut_off(self, primary: ClusterNode) -> Iterator[None]:
        """The primary's replicas stop taking its writes (stopped, their links closed) until
        the block ends: the primary acknowledges writes no replica has, as a lagging replica
        on a slow network would leave it. On loopback a replica is otherwise microseconds
        behind, and a kill of the primary would lose nothing to see."""
        replicas = [node for node in self.nodes if node is not primary]
        pids = [pid for pid in (node.redis_pid() for node in replicas) if pid is not None]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        client = sync_redis_from_settings(
            self.settings, url=f"redis://127.0.0.1:{primary.settings.redis_port}/0"
        )
        try:
            # What a stopped replica's socket already holds it would still read once resumed.
            client.client_kill_filter(_type="replica")
        finally:
            client.close()
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def kill_redis(self, node: ClusterNode) -> None:
        pid = node.redis_pid()
        assert pid is not None, f"redis-{node.n} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(f"redis-{node.n} gone", lambda: node.redis_pid() is None, 30)
