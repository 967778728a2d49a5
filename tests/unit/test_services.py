"""scripts/services.py without starting anything: checks, rendering, pid files, exit codes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from scripts import services
from scripts.services import (
    KAFKA_FILES,
    KAFKA_VERSION,
    Paths,
    find_problems,
    port_in_use,
    read_pid,
    render_properties,
)
from streams.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on ports nothing listens on, with a run folder of its own."""
    return Settings(
        run_dir=tmp_path / "run",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        redis_port=_free_port(),
    )


@pytest.fixture
def everything_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.shutil, "which", lambda name: f"/usr/bin/{name}")


def test_port_in_use_sees_a_listener_and_not_a_free_port(listener: int) -> None:
    assert port_in_use(listener)
    assert not port_in_use(_free_port())


def test_properties_render_ports_and_data_folder(settings: Settings, tmp_path: Path) -> None:
    text = render_properties(settings, tmp_path / "data")
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{settings.kafka_controller_port}"
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{settings.kafka_port},"
        f"CONTROLLER://127.0.0.1:{settings.kafka_controller_port}"
    )
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{settings.kafka_port}"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    assert "{" not in text


def test_pom_pins_the_same_kafka_and_the_slf4j_1_binding() -> None:
    pom = (KAFKA_FILES / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom  # not log4j-slf4j2-impl
    assert "${sys:kafka.logs.dir}" in (KAFKA_FILES / "log4j2.xml").read_text()


def test_no_problems_when_installed_and_ports_free(
    settings: Settings, everything_installed: None
) -> None:
    assert find_problems(settings, Paths(settings.run_dir)) == []


def test_a_taken_port_is_one_line_naming_the_setting(
    settings: Settings, listener: int, everything_installed: None
) -> None:
    taken = settings.model_copy(update={"kafka_controller_port": listener})
    (problem,) = find_problems(taken, Paths(taken.run_dir))
    assert f"port {listener} is taken" in problem
    assert "ELECTION_KAFKA_CONTROLLER_PORT" in problem


def test_missing_tools_are_one_line_each(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    problems = find_problems(settings, Paths(settings.run_dir))
    assert [p.split(" ", 1)[0] for p in problems] == ["java", "mvn", "redis-server"]
    assert all("\n" not in p for p in problems)


def test_mvn_is_not_needed_once_the_jars_are_there(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(settings.run_dir)
    paths.kafka_libs.mkdir(parents=True)
    paths.kafka_marker.touch()
    monkeypatch.setattr(services.shutil, "which", lambda name: None if name == "mvn" else name)
    assert find_problems(settings, paths) == []


def test_start_exits_2_with_one_line_per_problem(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(services, "get_settings", lambda: settings)
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    assert services.main(["start"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert all(line.startswith("election-services: ") for line in err)
    assert not settings.run_dir.exists()  # nothing was started or written


def test_read_pid_ignores_missing_garbage_and_dead(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert read_pid(pid_file) is None
    pid_file.write_text("not a number")
    assert read_pid(pid_file) is None
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid_file.write_text(finished.stdout.strip())
    assert read_pid(pid_file) is None


def test_read_pid_checks_the_command_line_and_zombies(tmp_path: Path) -> None:
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc")
    pid_file = tmp_path / "x.pid"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file.write_text(str(child.pid))
        assert read_pid(pid_file) == child.pid
        assert read_pid(pid_file, "time.sleep") == child.pid
        # A recycled pid now running something else is not ours.
        assert read_pid(pid_file, "kafka.Kafka /somewhere/server.properties") is None
        child.kill()
        # Killed but not yet reaped: a zombie still answers signal 0, yet is not running.
        for _ in range(100):
            stat = Path(f"/proc/{child.pid}/stat").read_text()
            if re.search(r"\) Z ", stat):
                break
            time.sleep(0.05)
        assert read_pid(pid_file) is None
    finally:
        child.kill()
        child.wait()


def test_stop_and_status_when_nothing_runs(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(services, "get_settings", lambda: settings)
    paths = Paths(settings.run_dir)
    paths.kafka.mkdir(parents=True)
    paths.kafka_pid.write_text("999999999")  # stale: no such process
    assert services.main(["stop"]) == 0
    assert not paths.kafka_pid.exists()
    assert services.main(["status"]) == 3
    out = capsys.readouterr().out
    assert re.search(r"^kafka\s+stopped\s+pid=-", out, re.M)
    assert re.search(r"^redis\s+stopped\s+pid=-", out, re.M)
    assert f"ELECTION_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{settings.kafka_port}" in out
    assert f"ELECTION_REDIS_URL=redis://127.0.0.1:{settings.redis_port}/0" in out


def test_the_cluster_has_three_nodes_on_ports_counted_from_the_base(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path / "run", cluster_base_port=40100)
    nodes = services.cluster_nodes(settings)
    assert [(n.settings.kafka_port, n.settings.kafka_controller_port) for n in nodes] == [
        (40101, 40111),
        (40102, 40112),
        (40103, 40113),
    ]
    assert [n.settings.redis_port for n in nodes] == [40121, 40122, 40123]
    assert [n.sentinel_port for n in nodes] == [40131, 40132, 40133]
    # Each node its own folder, the single node's jars shared.
    assert len({n.paths.run for n in nodes}) == 3
    assert {n.paths.kafka_libs for n in nodes} == {Paths.of(settings).kafka_libs}
    found = services.cluster_settings(settings)
    assert found == {
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:40101,127.0.0.1:40102,127.0.0.1:40103",
        "ELECTION_REDIS_URL": (
            "redis+sentinel://127.0.0.1:40131,127.0.0.1:40132,127.0.0.1:40133/election/0"
        ),
        "ELECTION_TOPIC_REPLICATION_FACTOR": "3",
        "ELECTION_MIN_INSYNC_REPLICAS": "2",
    }
    # What start --cluster prints is settings a worker reads.
    seen = Settings(**{k.removeprefix("ELECTION_").lower(): v for k, v in found.items()})
    assert (seen.topic_replication_factor, seen.min_insync_replicas) == (3, 2)


def test_a_cluster_node_votes_in_a_quorum_of_three_and_keeps_three_copies(
    tmp_path: Path,
) -> None:
    settings = Settings(run_dir=tmp_path / "run", cluster_base_port=40100)
    node = services.cluster_nodes(settings)[1]
    text = render_properties(node.settings, tmp_path / "data", node.kafka)
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:40111,2@127.0.0.1:40112,3@127.0.0.1:40113"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:40102,CONTROLLER://127.0.0.1:40112"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_the_sentinels_watch_the_primary_and_call_it_down_in_seconds(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path / "run", cluster_base_port=40100)
    node = services.cluster_nodes(settings)[2]
    conf = services.render_sentinel_config(node, 40121)
    assert "port 40133\n" in conf and "bind 127.0.0.1\n" in conf
    assert "sentinel monitor election 127.0.0.1 40121 2\n" in conf
    assert "sentinel down-after-milliseconds election 2000\n" in conf
    assert "auth-pass" not in conf
    secured = services.cluster_nodes(
        settings.model_copy(update={"redis_password": SecretStr('pa"ss')})
    )[0]
    assert 'sentinel auth-pass election "pa\\"ss"\n' in services.render_sentinel_config(
        secured, 40121
    )


def test_cluster_stop_and_status_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(run_dir=tmp_path / "run", cluster_base_port=_free_port() - 1)
    monkeypatch.setattr(services, "get_settings", lambda: settings)
    node = services.cluster_nodes(settings)[0]
    node.paths.kafka.mkdir(parents=True)
    node.paths.kafka_pid.write_text("999999999")  # stale: no such process
    assert services.main(["stop", "--cluster"]) == 0
    assert not node.paths.kafka_pid.exists()
    assert services.main(["status", "--cluster"]) == 3
    out = capsys.readouterr().out
    for n in (1, 2, 3):
        assert re.search(rf"^kafka-{n}\s+stopped\s+pid=-", out, re.M)
        assert re.search(rf"^redis-{n}\s+stopped\s+pid=-", out, re.M)
        assert re.search(rf"^sentinel-{n}\s+stopped\s+pid=-", out, re.M)
    assert "ELECTION_REDIS_URL=redis+sentinel://" in out


def test_cluster_start_names_every_taken_port(
    tmp_path: Path, listener: int, everything_installed: None
) -> None:
    # The listener sits where kafka-1 would listen.
    settings = Settings(run_dir=tmp_path / "run", cluster_base_port=listener - 1)
    problems = services.find_cluster_problems(settings, services.cluster_nodes(settings))
    assert problems == [
        f"port {listener} is taken by a program these scripts did not start: stop it or set "
        "ELECTION_CLUSTER_BASE_PORT so the cluster's twelve ports are free"
    ]
