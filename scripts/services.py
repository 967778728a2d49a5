"""Local services without Docker: Apache Kafka (KRaft, from Maven Central) and Debian's Redis."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streams.settings import PROJECT_ROOT, Settings, get_settings

KAFKA_VERSION = "4.1.1"
DEPLOY_DIR = PROJECT_ROOT / "deploy" / "kafka"
START_TIMEOUT_S = 120.0


class ServiceError(RuntimeError):
    """A one-line reason the services cannot run, and what to do about it."""


@dataclass(frozen=True)
class ServiceURLs:
    kafka_bootstrap_servers: str
    redis_url: str


@dataclass(frozen=True)
class Paths:
    run: Path

    @property
    def kafka(self) -> Path:
        return self.run / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka / "logs"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka / "server.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka / "kafka.pid"

    @property
    def redis(self) -> Path:
        return self.run / "redis"

    @property
    def redis_pid(self) -> Path:
        return self.redis / "redis.pid"

    @property
    def redis_log(self) -> Path:
        return self.redis / "redis.log"


def urls(settings: Settings) -> ServiceURLs:
    return ServiceURLs(
        kafka_bootstrap_servers=f"127.0.0.1:{settings.kafka_port}",
        redis_url=f"redis://127.0.0.1:{settings.redis_port}/0",
    )


def render_properties(settings: Settings, data_dir: Path) -> str:
    template = (DEPLOY_DIR / "server.properties.in").read_text(encoding="utf-8")
    return template.format(
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        data_dir=data_dir,
    )


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _require(command: str, advice: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise ServiceError(f"{command} not found: {advice}")
    return found


def _run_quietly(args: list[str], what: str, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise ServiceError(f"{what} failed ({completed.returncode}): {' | '.join(tail)}")


# --- Redis -------------------------------------------------------------------------------


def ensure_redis_installed() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    _require("apt-get", "install Redis yourself (redis-server) or run on Debian/Ubuntu")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing redis-server with apt-get ...", file=sys.stderr)
    _run_quietly(["apt-get", "update", "-qq"], "apt-get update", env)
    _run_quietly(["apt-get", "install", "-y", "-qq", "redis-server"], "apt-get install", env)
    return _require("redis-server", "apt-get installed redis-server but it is not on PATH")


def redis_answers(settings: Settings) -> bool:
    import redis

    try:
        client = redis.Redis(port=settings.redis_port, host="127.0.0.1", socket_timeout=1)
        return bool(client.ping())
    except redis.RedisError:
        return False


def start_redis(settings: Settings, paths: Paths) -> bool:
    """Start redis-server unless ours already runs; True when this call started it."""
    if read_pid(paths.redis_pid) is not None and redis_answers(settings):
        return False
    if port_in_use(settings.redis_port):
        raise ServiceError(
            f"port {settings.redis_port} is taken by another program: stop it or set REDIS_PORT"
        )
    server = ensure_redis_installed()
    paths.redis.mkdir(parents=True, exist_ok=True)
    _run_quietly(
        [
            server,
            "--port",
            str(settings.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(paths.redis),
            "--daemonize",
            "yes",
            "--pidfile",
            str(paths.redis_pid),
            "--logfile",
            str(paths.redis_log),
            # Tallies are rebuilt from Kafka in a rehearsal; no snapshots slowing the night.
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        "redis-server",
    )
    return True


# --- Kafka -------------------------------------------------------------------------------


def fetch_kafka(paths: Paths) -> None:
    """Copy the broker's jars from Maven Central once; a marker says the copy is complete."""
    marker = paths.kafka_libs / f".kafka-{KAFKA_VERSION}"
    if marker.exists():
        return
    mvn = _require("mvn", "install Maven (apt-get install -y maven) to fetch Kafka")
    if paths.kafka_libs.exists():
        shutil.rmtree(paths.kafka_libs)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(DEPLOY_DIR / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={paths.kafka_libs}",
    ]
    repo = os.environ.get("MAVEN_REPO_LOCAL")
    if repo:
        command.append(f"-Dmaven.repo.local={repo}")
    print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central ...", file=sys.stderr)
    _run_quietly(command, "mvn dependency:copy-dependencies")
    marker.touch()


def _java(paths: Paths, main_class: str, *args: str, heap: str = "256m") -> list[str]:
    java = _require("java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)")
    return [
        java,
        "-Xms128m",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={paths.kafka_logs}",
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.xml'}",
        "-cp",
        f"{paths.kafka_libs}/*",
        main_class,
        *args,
    ]


def format_storage(settings: Settings, paths: Paths) -> None:
    paths.kafka_logs.mkdir(parents=True, exist_ok=True)
    paths.kafka_properties.write_text(
        render_properties(settings, paths.kafka_data), encoding="utf-8"
    )
    if (paths.kafka_data / "meta.properties").exists():
        return
    cluster_id = subprocess.run(
        _java(paths, "kafka.tools.StorageTool", "random-uuid"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _run_quietly(
        _java(
            paths,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(paths.kafka_properties),
        ),
        "kafka storage format",
    )


def kafka_answers(settings: Settings) -> bool:
    """True when a metadata request lists our broker."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=urls(settings).kafka_bootstrap_servers,
            request_timeout_ms=3000,
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        cluster = admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start_kafka(settings: Settings, paths: Paths) -> bool:
    """Start the broker unless ours already runs; True when this call started it."""
    if read_pid(paths.kafka_pid) is not None:
        return False
    for port, variable in (
        (settings.kafka_port, "KAFKA_PORT"),
        (settings.kafka_controller_port, "KAFKA_CONTROLLER_PORT"),
    ):
        if port_in_use(port):
            raise ServiceError(
                f"port {port} is taken by another program: stop it or set {variable}"
            )
    _require("java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)")
    fetch_kafka(paths)
    format_storage(settings, paths)
    out = (paths.kafka_logs / "stdout.log").open("ab")
    process = subprocess.Popen(
        _java(paths, "kafka.Kafka", str(paths.kafka_properties), heap=settings.kafka_heap),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command, and Ctrl-C here does not reach it
        cwd=paths.kafka,
    )
    paths.kafka_pid.write_text(str(process.pid))
    return True


# --- Commands ----------------------------------------------------------------------------


def start_services(settings: Settings | None = None) -> ServiceURLs:
    """Start Kafka and Redis (harmless when they run) and return once both really answer."""
    settings = settings or get_settings()
    paths = Paths(settings.run_dir)
    began = time.monotonic()
    started_redis = start_redis(settings, paths)
    started_kafka = start_kafka(settings, paths)
    deadline = began + START_TIMEOUT_S
    while not redis_answers(settings):
        if time.monotonic() > deadline:
            raise ServiceError(f"redis did not answer PING; read {paths.redis_log}")
        time.sleep(0.2)
    while not kafka_answers(settings):
        if read_pid(paths.kafka_pid) is None:
            raise ServiceError(
                f"kafka exited while starting; read {paths.kafka_logs / 'server.log'} "
                f"and {paths.kafka_logs / 'stdout.log'}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"kafka did not answer within {START_TIMEOUT_S:.0f}s; "
                f"read {paths.kafka_logs / 'server.log'}"
            )
        time.sleep(0.5)
    elapsed = time.monotonic() - began
    verb = "started" if started_kafka or started_redis else "already running"
    print(f"services {verb}: answered after {elapsed:.1f}s", file=sys.stderr)
    return urls(settings)


def _stop_pid(pid_file: Path, name: str, timeout_s: float = 30.0) -> None:
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        print(f"{name}: not running", file=sys.stderr)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while read_pid(pid_file) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if read_pid(pid_file) is not None:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print(f"{name}: stopped (pid {pid})", file=sys.stderr)


def stop_services(settings: Settings | None = None) -> None:
    """Stop what start_services started, by the recorded process ids only."""
    settings = settings or get_settings()
    paths = Paths(settings.run_dir)
    # The worker `election-night` left running goes first, while Kafka can still see it leave.
    _stop_pid(settings.run_dir / "worker.pid", "worker")
    _stop_pid(paths.kafka_pid, "kafka")
    _stop_pid(paths.redis_pid, "redis")


def status(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    paths = Paths(settings.run_dir)
    service_urls = urls(settings)
    kafka_pid = read_pid(paths.kafka_pid)
    redis_pid = read_pid(paths.redis_pid)
    kafka_up = kafka_pid is not None and kafka_answers(settings)
    redis_up = redis_pid is not None and redis_answers(settings)
    print(
        f"kafka  {'running' if kafka_up else 'stopped'}  pid={kafka_pid or '-'}  "
        f"KAFKA_BOOTSTRAP_SERVERS={service_urls.kafka_bootstrap_servers}  "
        f"(Apache Kafka {KAFKA_VERSION}, logs {paths.kafka_logs})"
    )
    print(
        f"redis  {'running' if redis_up else 'stopped'}  pid={redis_pid or '-'}  "
        f"REDIS_URL={service_urls.redis_url}  (logs {paths.redis_log})"
    )
    return kafka_up and redis_up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="election-services",
        description="Start, stop or inspect the local Kafka broker and Redis (no Docker).",
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            service_urls = start_services()
            print(f"KAFKA_BOOTSTRAP_SERVERS={service_urls.kafka_bootstrap_servers}")
            print(f"REDIS_URL={service_urls.redis_url}")
            return 0
        if args.command == "stop":
            stop_services()
            return 0
        return 0 if status() else 3
    except ServiceError as error:
        print(f"election-services: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
