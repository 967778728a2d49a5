"""Local services without Docker: Apache Kafka (KRaft, from Maven Central) and Debian's Redis, as
one node each or as a cluster (three Kafka nodes, a Redis primary with two replicas and three
Sentinels)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from streams.connections import sync_redis_from_settings, sync_sentinels
from streams.settings import Settings, get_settings

__all__ = [
    "KAFKA_VERSION",
    "ClusterNode",
    "PrerequisiteError",
    "ServiceError",
    "ServiceURLs",
    "cluster_nodes",
    "cluster_status",
    "cluster_urls",
    "main",
    "read_pid",
    "start_cluster",
    "start_services",
    "status",
    "stop_cluster",
    "stop_services",
]

# Must match <kafka.version> in local_kafka/pom.xml; the marker file of the jars carries it,
# so changing both fetches the new broker on the next start.
KAFKA_VERSION = "4.1.1"
# The broker's pom, logging configuration and properties template ship with this module, so
# an installed wheel starts Kafka as a checkout does.
KAFKA_FILES = Path(__file__).resolve().parent / "local_kafka"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
JAVA_ADVICE = "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)"
MVN_ADVICE = "install Maven (apt-get install -y maven) so Kafka can be fetched from Maven Central"
# The local cluster: three nodes, each as if on a machine of its own (a Kafka broker that is
# also a KRaft controller, a Redis and a Sentinel), so any one can be lost. Topics keep three
# copies and a write needs two, as deploy/k8s/kafka.yaml has it.
CLUSTER_NODES = (1, 2, 3)
CLUSTER_REPLICATION = 3
CLUSTER_MIN_ISR = 2
# Three JVMs share the machine with everything else: the heap the fault tests' brokers run with.
CLUSTER_KAFKA_HEAP = "256m"
SENTINEL_SERVICE = "election"
SENTINEL_QUORUM = 2
# How long the Sentinels wait for an answer before calling the primary down: long enough that
# a busy two-core machine's pause is not taken for a death, short enough to heal in seconds.
SENTINEL_DOWN_AFTER_MS = 2000
SENTINEL_FAILOVER_TIMEOUT_MS = 10_000
ROLES = {"master": "primary", "slave": "replica"}  # Redis's words for them, and ours


class ServiceError(RuntimeError):
    """A one-line reason the services cannot run, and what to do about it."""


class PrerequisiteError(ServiceError):
    """Everything missing before anything was started, one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ServiceURLs:
    kafka_bootstrap_servers: str
    redis_url: str


@dataclass(frozen=True)
class Paths:
    """Where each service keeps its jars, data, logs and pid file under the run folder."""

    run: Path
    # The jars are the same for every run folder: an isolated broker (a fault test's) can
    # use the ones already fetched instead of fetching its own.
    libs: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls(settings.run_dir, settings.kafka_libs_dir)

    @property
    def kafka(self) -> Path:
        return self.run / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.libs or self.kafka / "libs"

    @property
    def kafka_marker(self) -> Path:
        return self.kafka_libs / f".kafka-{KAFKA_VERSION}"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka / "logs"

    @property
    def kafka_server_log(self) -> Path:
        return self.kafka_logs / "server.log"

    @property
    def kafka_stdout_log(self) -> Path:
        return self.kafka_logs / "stdout.log"

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

    @property
    def worker_pid(self) -> Path:
        return self.run / "worker.pid"

    @property
    def sentinel(self) -> Path:
        return self.run / "sentinel"

    @property
    def sentinel_conf(self) -> Path:
        return self.sentinel / "sentinel.conf"

    @property
    def sentinel_pid(self) -> Path:
        return self.sentinel / "sentinel.pid"

    @property
    def sentinel_log(self) -> Path:
        return self.sentinel / "sentinel.log"


@dataclass(frozen=True)
class KafkaNode:
    """A KRaft node's id, the controller quorum it votes in, and the copies its topics keep."""

    node_id: int
    quorum_voters: str
    replication: int = 1
    min_isr: int = 1


def single_node(settings: Settings) -> KafkaNode:
    return KafkaNode(1, f"1@127.0.0.1:{settings.kafka_controller_port}")


def urls(settings: Settings) -> ServiceURLs:
    return ServiceURLs(
        kafka_bootstrap_servers=f"127.0.0.1:{settings.kafka_port}",
        redis_url=f"redis://127.0.0.1:{settings.redis_port}/0",
    )


def render_properties(settings: Settings, data_dir: Path, node: KafkaNode | None = None) -> str:
    node = node or single_node(settings)
    template = (KAFKA_FILES / "server.properties.in").read_text(encoding="utf-8")
    sasl_listener = sasl_config = ""
    if settings.kafka_sasl_port:
        sasl_listener = f",SASL_PLAINTEXT://127.0.0.1:{settings.kafka_sasl_port}"
        # The broker side of SCRAM needs a login module per mechanism, and no secret.
        sasl_config = "\n".join(
            ["sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"]
            + [
                f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for mechanism in ("scram-sha-256", "scram-sha-512")
            ]
        )
    return template.format(
        node_id=node.node_id,
        quorum_voters=node.quorum_voters,
        replication=node.replication,
        min_isr=node.min_isr,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        data_dir=data_dir,
        sasl_listener=sasl_listener,
        sasl_config=sasl_config,
    )


def scram_credential(settings: Settings) -> str | None:
    """The StorageTool `--add-scram` value of the local broker's SASL user, if it has one."""
    if not settings.kafka_sasl_port:
        return None
    if settings.kafka_sasl_mechanism not in {"SCRAM-SHA-256", "SCRAM-SHA-512"}:
        raise ServiceError(
            "the local broker's SASL listener takes SCRAM only: set ELECTION_KAFKA_SASL_MECHANISM "
            "to SCRAM-SHA-256 or SCRAM-SHA-512"
        )
    user = settings.kafka_sasl_username
    password = settings.kafka_sasl_password.get_secret_value()
    if not user or not password:
        raise ServiceError(
            "ELECTION_KAFKA_SASL_PORT needs ELECTION_KAFKA_SASL_USERNAME and "
            "ELECTION_KAFKA_SASL_PASSWORD"
        )
    # The tool's own syntax quotes values with double quotes; refuse what would break it.
    if any(c in value for value in (user, password) for c in '",[]='):
        raise ServiceError('ELECTION_KAFKA_SASL_USERNAME/PASSWORD must not contain " , [ ] or =')
    return f'{settings.kafka_sasl_mechanism}=[name="{user}",password="{password}"]'


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on the port (ours or not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _proc_alive(pid: int, expect: str | None) -> bool:
    """The pid runs, is not a zombie, and (when told) its command line mentions `expect`.

    The command-line check keeps a stale pid file, whose number the system has since given
    to another program, from making us report or signal a stranger.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    if not proc.exists():  # no procfs (macOS): the signal check is all we have
        return True
    try:
        # A child that exited but was not reaped yet (start_services called in-process) is
        # still signalable; its state letter is Z.
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in {"Z", "X"}:
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return expect is None or expect in cmdline


def read_pid(pid_file: Path, expect: str | None = None) -> int | None:
    """The recorded pid when that process still runs (see _proc_alive), else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _proc_alive(pid, expect) else None


def _kafka_expect(paths: Paths) -> str:
    return str(paths.kafka_properties)


def _redis_expect(settings: Settings) -> str:
    # redis-server rewrites its process title to "redis-server 127.0.0.1:<port>".
    return f":{settings.redis_port}"


def _run_quietly(args: list[str], what: str, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise ServiceError(f"{what} failed ({completed.returncode}): {' | '.join(tail)}")
    return completed.stdout


# --- Prerequisites -----------------------------------------------------------------------


def find_problems(settings: Settings, paths: Paths) -> list[str]:
    """Everything that would stop `start`, one line each, checked before starting anything."""
    problems: list[str] = []
    kafka_ours = read_pid(paths.kafka_pid, _kafka_expect(paths)) is not None
    redis_ours = read_pid(paths.redis_pid, _redis_expect(settings)) is not None
    if not kafka_ours:
        if shutil.which("java") is None:
            problems.append(f"java not found: {JAVA_ADVICE}")
        # Maven is only needed for the first fetch of the jars.
        if not paths.kafka_marker.exists() and shutil.which("mvn") is None:
            problems.append(f"mvn not found: {MVN_ADVICE}")
        for port, variable in (
            (settings.kafka_port, "ELECTION_KAFKA_PORT"),
            (settings.kafka_controller_port, "ELECTION_KAFKA_CONTROLLER_PORT"),
            (settings.kafka_sasl_port, "ELECTION_KAFKA_SASL_PORT"),
        ):
            if port and port_in_use(port):
                problems.append(
                    f"port {port} is taken by a program these scripts did not start: "
                    f"stop it or set {variable} to a free port"
                )
    if not redis_ours:
        if shutil.which("redis-server") is None and shutil.which("apt-get") is None:
            problems.append(
                "redis-server not found and no apt-get to install it: install Redis 7 yourself"
            )
        if port_in_use(settings.redis_port):
            problems.append(
                f"port {settings.redis_port} is taken by a program these scripts did not start: "
                "stop it or set ELECTION_REDIS_PORT to a free port"
            )
    return problems


# --- Redis -------------------------------------------------------------------------------


def _apt_lists_present() -> bool:
    lists = Path("/var/lib/apt/lists")
    return lists.is_dir() and any(lists.glob("*_Packages*"))


def ensure_redis_installed() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing redis-server with apt-get ...", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-qq", "redis-server"]
    if not _apt_lists_present():  # a fresh machine has no package lists yet
        _run_quietly(["apt-get", "update", "-qq"], "apt-get update", env)
    try:
        _run_quietly(install, "apt-get install redis-server", env)
    except ServiceError:
        # Stale lists name package versions the mirror no longer has: refresh once and retry.
        _run_quietly(["apt-get", "update", "-qq"], "apt-get update", env)
        _run_quietly(install, "apt-get install redis-server", env)
    found = shutil.which("redis-server")
    if found is None:
        raise ServiceError("apt-get installed redis-server but it is not on PATH")
    return found


def redis_answers(settings: Settings) -> bool:
    client = sync_redis_from_settings(
        settings, url=urls(settings).redis_url, socket_timeout=1, socket_connect_timeout=1
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _config_quoted(value: str) -> str:
    """A value for a double-quoted string of a Redis configuration file."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def start_redis(settings: Settings, paths: Paths, replica_of: int | None = None) -> bool:
    """Start redis-server unless ours already runs (as a replica of the one on port
    `replica_of`, when given); True when this call started it."""
    if read_pid(paths.redis_pid, _redis_expect(settings)) is not None:
        return False
    server = ensure_redis_installed()
    paths.redis.mkdir(parents=True, exist_ok=True)
    paths.redis_pid.unlink(missing_ok=True)
    # With ELECTION_REDIS_PASSWORD the local server asks for it too, from a file only we can read
    # (not the command line, which every user of the machine can list).
    config = paths.redis / "redis.conf"
    config.touch(mode=0o600)
    config.chmod(0o600)
    password = settings.redis_password.get_secret_value() if settings.redis_password else ""
    quoted = _config_quoted(password)
    # A replica authenticates to its primary with the same password.
    config.write_text(
        f'requirepass "{quoted}"\nmasterauth "{quoted}"\n' if password else "", encoding="utf-8"
    )
    replication = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
    _run_quietly(
        [
            server,
            str(config),
            "--port",
            str(settings.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(paths.redis),
            # redis forks and writes its own pid file, so no process of ours has to stay.
            "--daemonize",
            "yes",
            "--pidfile",
            str(paths.redis_pid),
            "--logfile",
            str(paths.redis_log),
            # The night's persistence (docs/operations.md): an append-only file synced every
            # second, so a restart loses at most ~1 s of writes, which the Kafka offsets kept
            # in the same Lua steps make the workers re-apply. A restart loads that file, not
            # the RDB snapshot: the snapshot is a second copy, taken hourly, because each one
            # forks Redis to write all it holds, and Redis's own once a minute under load
            # coincided with every alert p99 over 200 ms at 1,000 a second in the benchmark
            # (docs/benchmarks.md, 28 November). Losing the files too is what
            # election-rebuild is for.
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "3600 1",
            # Compacting the append-only file forks Redis and writes everything it holds. At
            # Redis's 64 MB a benchmark's load (a change log and outbox of hundreds of MB) had it
            # compact every four seconds on the cores the workers use: the alert p99 at 1,000 a
            # second was 0.7 to 2.2 s, and 0.2 to 0.4 s with this (docs/benchmarks.md, 27
            # November, evening). A night's file never comes near it.
            "--auto-aof-rewrite-min-size",
            "1gb",
            *replication,
        ],
        "redis-server",
    )
    return True


# --- Kafka -------------------------------------------------------------------------------


def fetch_kafka(paths: Paths) -> None:
    """Copy the broker's jars from Maven Central once; a marker says the copy is complete."""
    if paths.kafka_marker.exists():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(f"mvn not found: {MVN_ADVICE}")
    # A copy without the marker was interrupted: start it again from nothing.
    if paths.kafka_libs.exists():
        shutil.rmtree(paths.kafka_libs)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(KAFKA_FILES / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={paths.kafka_libs}",
    ]
    repo = os.environ.get("MAVEN_REPO_LOCAL")
    if repo:  # a separate local repository, e.g. an empty one to time a cold start
        command.append(f"-Dmaven.repo.local={repo}")
    print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central ...", file=sys.stderr)
    _run_quietly(command, "mvn dependency:copy-dependencies")
    paths.kafka_marker.touch()


def java_command(
    paths: Paths, main_class: str, *args: str, xms: str = "64m", xmx: str = "256m"
) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(f"java not found: {JAVA_ADVICE}")
    return [
        java,
        f"-Xms{xms}",
        f"-Xmx{xmx}",
        # Two cores: the serial collector and the C1 compiler only start faster and cost less.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={paths.kafka_logs}",
        f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.xml'}",
        "-cp",
        f"{paths.kafka_libs}/*",
        main_class,
        *args,
    ]


def format_storage(
    settings: Settings,
    paths: Paths,
    node: KafkaNode | None = None,
    cluster_id: str | None = None,
) -> None:
    """Render server.properties every start (ports may change); format the storage once, with
    `cluster_id` (the one every node of a cluster shares) or a new one."""
    paths.kafka_logs.mkdir(parents=True, exist_ok=True)
    paths.kafka_properties.write_text(
        render_properties(settings, paths.kafka_data, node), encoding="utf-8"
    )
    scram = scram_credential(settings)
    # SCRAM users enter the metadata log at format time only; this file names who did.
    scram_user = paths.kafka / "scram-user"
    if (paths.kafka_data / "meta.properties").exists():
        formatted_with = scram_user.read_text().strip() if scram_user.exists() else ""
        if scram is not None and formatted_with != settings.kafka_sasl_username:
            raise ServiceError(
                f"{paths.kafka_data} was formatted without SASL user "
                f"{settings.kafka_sasl_username!r}: delete {paths.kafka_data} (or use another "
                "ELECTION_RUN_DIR) so the next start formats it with that user"
            )
        return
    cluster_id = cluster_id or new_cluster_id(paths)
    # A static controller.quorum.voters needs no --standalone, for one node or three.
    command = java_command(
        paths,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(paths.kafka_properties),
    )
    if scram is not None:
        command += ["--add-scram", scram]
    _run_quietly(command, "kafka storage format")
    scram_user.write_text(settings.kafka_sasl_username if scram is not None else "")


def new_cluster_id(paths: Paths) -> str:
    return _run_quietly(
        java_command(paths, "kafka.tools.StorageTool", "random-uuid"), "kafka random-uuid"
    ).strip()


def kafka_answers(settings: Settings, bootstrap: str | None = None, brokers: int = 1) -> bool:
    """True when a metadata request lists `brokers` brokers: listening alone is not ready."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap or urls(settings).kafka_bootstrap_servers,
            request_timeout_ms=3000,
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        cluster = admin.describe_cluster()
        return len(cluster.get("brokers") or []) >= brokers
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start_kafka(
    settings: Settings,
    paths: Paths,
    node: KafkaNode | None = None,
    cluster_id: str | None = None,
) -> bool:
    """Start the broker unless ours already runs; True when this call started it."""
    if read_pid(paths.kafka_pid, _kafka_expect(paths)) is not None:
        return False
    fetch_kafka(paths)
    format_storage(settings, paths, node, cluster_id)
    command = java_command(
        paths,
        "kafka.Kafka",
        str(paths.kafka_properties),
        xms="256m",
        xmx=settings.kafka_heap,
    )
    with paths.kafka_stdout_log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Outlives this command, and a Ctrl-C here does not reach it.
            start_new_session=True,
            cwd=paths.kafka,
        )
    paths.kafka_pid.write_text(str(process.pid))
    return True


# --- Commands ----------------------------------------------------------------------------


def start_services(settings: Settings | None = None) -> ServiceURLs:
    """Start Kafka and Redis (harmless when they run) and return once both really answer."""
    settings = settings or get_settings()
    paths = Paths.of(settings)
    began = time.monotonic()
    problems = find_problems(settings, paths)
    if problems:
        raise PrerequisiteError(problems)
    paths.run.mkdir(parents=True, exist_ok=True)
    started_redis = start_redis(settings, paths)
    started_kafka = start_kafka(settings, paths)
    deadline = began + START_TIMEOUT_S
    while not redis_answers(settings):
        if time.monotonic() > deadline:
            raise ServiceError(
                f"redis did not answer PING within {START_TIMEOUT_S:.0f}s; read {paths.redis_log}"
            )
        time.sleep(0.1)
    while not kafka_answers(settings):
        if read_pid(paths.kafka_pid, _kafka_expect(paths)) is None:
            raise ServiceError(
                f"kafka exited while starting; read {paths.kafka_server_log} "
                f"and {paths.kafka_stdout_log}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"kafka did not answer within {START_TIMEOUT_S:.0f}s; read {paths.kafka_server_log}"
            )
        time.sleep(0.25)
    elapsed = time.monotonic() - began
    if started_kafka or started_redis:
        started = [
            name for name, did in (("kafka", started_kafka), ("redis", started_redis)) if did
        ]
        print(f"started {' and '.join(started)}: answering after {elapsed:.1f}s", file=sys.stderr)
    else:
        print(f"already running: answering after {elapsed:.1f}s", file=sys.stderr)
    return urls(settings)


def _reap(pid: int) -> None:
    """Collect the exit status when the process was our own child (start_services in-process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stop_pids(processes: list[tuple[Path, str, str | None]]) -> None:
    """SIGTERM every (pid file, name, command-line check) that runs, then wait for them all;
    SIGKILL what has not exited after STOP_TIMEOUT_S."""
    running: list[tuple[Path, str, str | None, int]] = []
    for pid_file, name, expect in processes:
        pid = read_pid(pid_file, expect)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            print(f"{name}: not running", file=sys.stderr)
        else:
            os.kill(pid, signal.SIGTERM)
            running.append((pid_file, name, expect, pid))
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running and time.monotonic() < deadline:
        for *_, pid in running:
            _reap(pid)
        running_now = [entry for entry in running if read_pid(entry[0], entry[2]) is not None]
        for pid_file, name, _, pid in set(running) - set(running_now):
            pid_file.unlink(missing_ok=True)
            print(f"{name}: stopped (pid {pid})", file=sys.stderr)
        running = running_now
        time.sleep(0.1)
    for pid_file, name, _, pid in running:
        print(
            f"{name}: no exit {STOP_TIMEOUT_S:.0f}s after SIGTERM, sending SIGKILL", file=sys.stderr
        )
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
        pid_file.unlink(missing_ok=True)
        print(f"{name}: stopped (pid {pid})", file=sys.stderr)


def stop_services(settings: Settings | None = None) -> None:
    """Stop what start_services started, by the recorded process ids only."""
    settings = settings or get_settings()
    paths = Paths.of(settings)
    # The worker `election-night` left running goes first, while Kafka can still see it leave.
    _stop_pids([(paths.worker_pid, "worker", None)])
    _stop_pids([(paths.kafka_pid, "kafka", _kafka_expect(paths))])
    _stop_pids([(paths.redis_pid, "redis", _redis_expect(settings))])


def status(settings: Settings | None = None) -> bool:
    """Print one line per service; True when both run and answer."""
    settings = settings or get_settings()
    paths = Paths.of(settings)
    service_urls = urls(settings)
    kafka_pid = read_pid(paths.kafka_pid, _kafka_expect(paths))
    redis_pid = read_pid(paths.redis_pid, _redis_expect(settings))
    kafka_up = kafka_pid is not None and kafka_answers(settings)
    redis_up = redis_pid is not None and redis_answers(settings)
    print(
        f"kafka  {'running' if kafka_up else 'stopped'}  pid={kafka_pid or '-'}  "
        f"ELECTION_KAFKA_BOOTSTRAP_SERVERS={service_urls.kafka_bootstrap_servers}  "
        f"(Apache Kafka {KAFKA_VERSION}, log {paths.kafka_server_log})"
    )
    print(
        f"redis  {'running' if redis_up else 'stopped'}  pid={redis_pid or '-'}  "
        f"ELECTION_REDIS_URL={service_urls.redis_url}  (log {paths.redis_log})"
    )
    return kafka_up and redis_up


# --- The cluster -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode:
    """Node n of the local cluster: its own ports (in `settings`: kafka_port,
    kafka_controller_port, redis_port; and `sentinel_port`) and folder, run/cluster/node-n."""

    n: int
    settings: Settings
    sentinel_port: int
    paths: Paths

    @property
    def kafka(self) -> KafkaNode:
        return KafkaNode(self.n, quorum_voters(self.settings), CLUSTER_REPLICATION, CLUSTER_MIN_ISR)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def kafka_pid(self) -> int | None:
        return read_pid(self.paths.kafka_pid, _kafka_expect(self.paths))

    def redis_pid(self) -> int | None:
        return read_pid(self.paths.redis_pid, _redis_expect(self.settings))

    def sentinel_pid(self) -> int | None:
        return read_pid(self.paths.sentinel_pid, f":{self.sentinel_port}")


def quorum_voters(settings: Settings) -> str:
    base = settings.cluster_base_port
    return ",".join(f"{n}@127.0.0.1:{base + 10 + n}" for n in CLUSTER_NODES)


def cluster_nodes(settings: Settings) -> list[ClusterNode]:
    """The three nodes on ELECTION_CLUSTER_BASE_PORT's ports, sharing the single node's jars."""
    base = settings.cluster_base_port
    libs = Paths.of(settings).kafka_libs
    return [
        ClusterNode(
            n,
            settings.model_copy(
                update={
                    "kafka_port": base + n,
                    "kafka_controller_port": base + 10 + n,
                    "redis_port": base + 20 + n,
                    "kafka_sasl_port": 0,
                    "kafka_heap": CLUSTER_KAFKA_HEAP,
                }
            ),
            base + 30 + n,
            Paths(settings.run_dir / "cluster" / f"node-{n}", libs),
        )
        for n in CLUSTER_NODES
    ]


def cluster_urls(settings: Settings) -> ServiceURLs:
    nodes = cluster_nodes(settings)
    sentinels = ",".join(f"127.0.0.1:{node.sentinel_port}" for node in nodes)
    return ServiceURLs(
        kafka_bootstrap_servers=",".join(node.bootstrap for node in nodes),
        redis_url=f"redis+sentinel://{sentinels}/{SENTINEL_SERVICE}/0",
    )


def cluster_settings(settings: Settings) -> dict[str, str]:
    """The settings that point a worker, the replay or a benchmark at the cluster."""
    found = cluster_urls(settings)
    return {
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": found.kafka_bootstrap_servers,
        "ELECTION_REDIS_URL": found.redis_url,
        "ELECTION_TOPIC_REPLICATION_FACTOR": str(CLUSTER_REPLICATION),
        "ELECTION_MIN_INSYNC_REPLICAS": str(CLUSTER_MIN_ISR),
    }


def find_cluster_problems(settings: Settings, nodes: list[ClusterNode]) -> list[str]:
    """Everything that would stop `start --cluster`, one line each."""
    problems: list[str] = []
    if shutil.which("java") is None:
        problems.append(f"java not found: {JAVA_ADVICE}")
    if not Paths.of(settings).kafka_marker.exists() and shutil.which("mvn") is None:
        problems.append(f"mvn not found: {MVN_ADVICE}")
    if shutil.which("redis-server") is None and shutil.which("apt-get") is None:
        problems.append(
            "redis-server not found and no apt-get to install it: install Redis 7 yourself"
        )
    for node in nodes:
        taken = [
            port
            for port, ours in (
                (node.settings.kafka_port, node.kafka_pid()),
                (node.settings.kafka_controller_port, node.kafka_pid()),
                (node.settings.redis_port, node.redis_pid()),
                (node.sentinel_port, node.sentinel_pid()),
            )
            if ours is None and port_in_use(port)
        ]
        problems += [
            f"port {port} is taken by a program these scripts did not start: stop it or set "
            "ELECTION_CLUSTER_BASE_PORT so the cluster's twelve ports are free"
            for port in taken
        ]
    return problems


def _sentinels(settings: Settings) -> redis.sentinel.Sentinel:
    return sync_sentinels(
        settings, cluster_urls(settings).redis_url, socket_timeout=1, socket_connect_timeout=1
    )


def _node_client(node: ClusterNode) -> redis.Redis:
    """A client of the node's own redis-server, whatever its role."""
    return sync_redis_from_settings(
        node.settings,
        url=f"redis://127.0.0.1:{node.settings.redis_port}/0",
        socket_timeout=1,
        socket_connect_timeout=1,
    )


def current_primary(settings: Settings) -> int | None:
    """The port of the Redis primary as the Sentinels have it; None when none answers (the
    cluster's first start, or every Sentinel stopped)."""
    sentinels = _sentinels(settings)
    try:
        return int(sentinels.discover_master(SENTINEL_SERVICE)[1])
    except redis.RedisError:
        return None
    finally:
        for client in sentinels.sentinels:
            client.close()


def render_sentinel_config(node: ClusterNode, primary_port: int) -> str:
    password = node.settings.redis_password
    auth = ""
    if password is not None and password.get_secret_value():
        quoted = _config_quoted(password.get_secret_value())
        auth = f'sentinel auth-pass {SENTINEL_SERVICE} "{quoted}"\n'
    paths = node.paths
    return (
        f"port {node.sentinel_port}\n"
        "bind 127.0.0.1\n"
        "daemonize yes\n"
        f"pidfile {paths.sentinel_pid}\n"
        f"logfile {paths.sentinel_log}\n"
        f"dir {paths.sentinel}\n"
        f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} {SENTINEL_QUORUM}\n"
        f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {SENTINEL_DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_SERVICE} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
        f"{auth}"
    )


def start_sentinel(node: ClusterNode, primary_port: int) -> bool:
    """Start the node's Sentinel unless it runs; True when this call started it."""
    if node.sentinel_pid() is not None:
        return False
    server = ensure_redis_installed()
    paths = node.paths
    paths.sentinel.mkdir(parents=True, exist_ok=True)
    paths.sentinel_pid.unlink(missing_ok=True)
    # A Sentinel rewrites its file with what it learns (the primary after a failover, the
    # epochs, the other Sentinels): a restart must find that, so the file is written once.
    if not paths.sentinel_conf.exists():
        paths.sentinel_conf.touch(mode=0o600)
        paths.sentinel_conf.write_text(render_sentinel_config(node, primary_port), "utf-8")
    _run_quietly([server, str(paths.sentinel_conf), "--sentinel"], "redis-server --sentinel")
    return True


def cluster_id(settings: Settings) -> str:
    """The id every node's storage is formatted with: made once, kept beside the nodes."""
    kept = settings.run_dir / "cluster" / "cluster-id"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(new_cluster_id(Paths.of(settings)))
    return kept.read_text().strip()


def redis_cluster_ready(settings: Settings, nodes: list[ClusterNode]) -> bool:
    """The primary answers with two replicas linked, and every Sentinel monitors it and knows
    the two others, so a failover can start from the first second."""
    primary = current_primary(settings)
    node = next((node for node in nodes if node.settings.redis_port == primary), None)
    if node is None:
        return False
    data, sentinels = _node_client(node), _sentinels(settings)
    try:
        replication = data.info("replication")
        if replication.get("role") != "master" or replication.get("connected_slaves") != 2:
            return False
        return all(
            int(client.sentinel_master(SENTINEL_SERVICE).get("num-other-sentinels", 0))
            >= len(nodes) - 1
            for client in sentinels.sentinels
        )
    except redis.RedisError:
        return False
    finally:
        data.close()
        for client in sentinels.sentinels:
            client.close()


def start_cluster(settings: Settings | None = None) -> ServiceURLs:
    """Start the three nodes (harmless for those that run) and return once Kafka lists three
    brokers and the Redis primary, its two replicas and the three Sentinels see each other."""
    settings = settings or get_settings()
    nodes = cluster_nodes(settings)
    began = time.monotonic()
    problems = find_cluster_problems(settings, nodes)
    if problems:
        raise PrerequisiteError(problems)
    fetch_kafka(Paths.of(settings))
    identity = cluster_id(settings)
    # A node coming back after a failover joins the primary the Sentinels now name.
    primary = current_primary(settings) or nodes[0].settings.redis_port
    started: list[str] = []
    for node in nodes:
        node.paths.run.mkdir(parents=True, exist_ok=True)
        replica_of = None if node.settings.redis_port == primary else primary
        if start_redis(node.settings, node.paths, replica_of):
            started.append(f"redis-{node.n}")
    for node in nodes:
        if start_sentinel(node, primary):
            started.append(f"sentinel-{node.n}")
    for node in nodes:
        if start_kafka(node.settings, node.paths, node.kafka, identity):
            started.append(f"kafka-{node.n}")
    found = cluster_urls(settings)
    deadline = began + START_TIMEOUT_S
    while not (
        redis_cluster_ready(settings, nodes)
        # Each node asked itself: the others would list a broker just killed until it is
        # fenced, seconds later.
        and all(kafka_answers(settings, node.bootstrap, brokers=len(nodes)) for node in nodes)
    ):
        for node in nodes:
            if node.kafka_pid() is None:
                raise ServiceError(
                    f"kafka-{node.n} exited while starting; read {node.paths.kafka_server_log}"
                )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the cluster did not answer within {START_TIMEOUT_S:.0f}s; read the logs "
                f"under {settings.run_dir / 'cluster'}"
            )
        time.sleep(0.25)
    elapsed = time.monotonic() - began
    what = f"started {', '.join(started)}" if started else "already running"
    print(f"cluster {what}: answering after {elapsed:.1f}s", file=sys.stderr)
    return found


def stop_cluster(settings: Settings | None = None) -> None:
    """Stop the cluster's processes by their recorded pids: the Sentinels first (no failover
    while the rest stop), then the Kafka nodes together (a last node alone would wait for a
    controller quorum that is gone), then Redis."""
    settings = settings or get_settings()
    nodes = cluster_nodes(settings)
    _stop_pids([(n.paths.sentinel_pid, f"sentinel-{n.n}", f":{n.sentinel_port}") for n in nodes])
    _stop_pids([(n.paths.kafka_pid, f"kafka-{n.n}", _kafka_expect(n.paths)) for n in nodes])
    _stop_pids([(n.paths.redis_pid, f"redis-{n.n}", _redis_expect(n.settings)) for n in nodes])


def cluster_status(settings: Settings | None = None) -> bool:
    """Print one line per process of the cluster; True when all run and answer."""
    settings = settings or get_settings()
    nodes = cluster_nodes(settings)
    all_up = True
    for node in nodes:
        kafka_pid = node.kafka_pid()
        kafka_up = kafka_pid is not None and kafka_answers(settings, node.bootstrap)
        redis_pid, role = node.redis_pid(), "stopped"
        if redis_pid is not None:
            client = _node_client(node)
            try:
                role = ROLES.get(str(client.info("replication").get("role")), "?")
            except redis.RedisError:
                role = "not answering"
            finally:
                client.close()
        sentinel_pid = node.sentinel_pid()
        print(
            f"kafka-{node.n}  {'running' if kafka_up else 'stopped'}  pid={kafka_pid or '-'}  "
            f"{node.bootstrap}  (log {node.paths.kafka_server_log})"
        )
        print(
            f"redis-{node.n}  {role}  pid={redis_pid or '-'}  "
            f"127.0.0.1:{node.settings.redis_port}  (log {node.paths.redis_log})"
        )
        print(
            f"sentinel-{node.n}  {'running' if sentinel_pid else 'stopped'}  "
            f"pid={sentinel_pid or '-'}  127.0.0.1:{node.sentinel_port}"
        )
        all_up = all_up and kafka_up and role in ROLES.values() and sentinel_pid is not None
    for name, value in cluster_settings(settings).items():
        print(f"{name}={value}")
    return all_up


def _cluster_command(command: str) -> int:
    if command == "start":
        start_cluster()
        for name, value in cluster_settings(get_settings()).items():
            print(f"{name}={value}")
        return 0
    if command == "stop":
        stop_cluster()
        return 0
    return 0 if cluster_status() else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="election-services",
        description=(
            "Start, stop or inspect the local Kafka broker and Redis (no Docker). "
            "start prints ELECTION_KAFKA_BOOTSTRAP_SERVERS=... and ELECTION_REDIS_URL=... on "
            "stdout."
        ),
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the local cluster instead: three Kafka nodes (KRaft), a Redis primary with two "
        "replicas and three Sentinels; start prints the settings that point clients at it",
    )
    args = parser.parse_args(argv)
    try:
        if args.cluster:
            return _cluster_command(args.command)
        if args.command == "start":
            service_urls = start_services()
            print(f"ELECTION_KAFKA_BOOTSTRAP_SERVERS={service_urls.kafka_bootstrap_servers}")
            print(f"ELECTION_REDIS_URL={service_urls.redis_url}")
            return 0
        if args.command == "stop":
            stop_services()
            return 0
        return 0 if status() else 3
    except PrerequisiteError as error:
        for problem in error.problems:
            print(f"election-services: {problem}", file=sys.stderr)
        return 2
    except ServiceError as error:
        print(f"election-services: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
