"""Local services without Docker: Apache Kafka (KRaft, from Maven Central) and Debian's Redis."""

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

from streams.connections import sync_redis_from_settings
from streams.settings import Settings, get_settings

__all__ = [
    "KAFKA_VERSION",
    "PrerequisiteError",
    "ServiceError",
    "ServiceURLs",
    "main",
    "read_pid",
    "start_services",
    "status",
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


def urls(settings: Settings) -> ServiceURLs:
    return ServiceURLs(
        kafka_bootstrap_servers=f"127.0.0.1:{settings.kafka_port}",
        redis_url=f"redis://127.0.0.1:{settings.redis_port}/0",
    )


def render_properties(settings: Settings, data_dir: Path) -> str:
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
    import redis

    client = sync_redis_from_settings(
        settings, url=urls(settings).redis_url, socket_timeout=1, socket_connect_timeout=1
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis(settings: Settings, paths: Paths) -> bool:
    """Start redis-server unless ours already runs; True when this call started it."""
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
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    config.write_text(f'requirepass "{quoted}"\n' if password else "", encoding="utf-8")
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
            # in the same Lua steps make the workers re-apply; plus RDB snapshots for a fast
            # load. Losing the files too is what election-rebuild is for.
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "900 1 300 100 60 10000",
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


def format_storage(settings: Settings, paths: Paths) -> None:
    """Render server.properties every start (ports may change); format the storage once."""
    paths.kafka_logs.mkdir(parents=True, exist_ok=True)
    paths.kafka_properties.write_text(
        render_properties(settings, paths.kafka_data), encoding="utf-8"
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
    cluster_id = _run_quietly(
        java_command(paths, "kafka.tools.StorageTool", "random-uuid"), "kafka random-uuid"
    ).strip()
    # A static controller.quorum.voters needs no --standalone for one combined node.
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


def kafka_answers(settings: Settings) -> bool:
    """True when a metadata request lists a broker: listening alone is not ready."""
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
    if read_pid(paths.kafka_pid, _kafka_expect(paths)) is not None:
        return False
    fetch_kafka(paths)
    format_storage(settings, paths)
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


def _stop_pid(pid_file: Path, name: str, expect: str | None, timeout_s: float) -> None:
    pid = read_pid(pid_file, expect)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        print(f"{name}: not running", file=sys.stderr)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if read_pid(pid_file, expect) is None:
            break
        time.sleep(0.1)
    else:
        print(f"{name}: no exit {timeout_s:.0f}s after SIGTERM, sending SIGKILL", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    pid_file.unlink(missing_ok=True)
    print(f"{name}: stopped (pid {pid})", file=sys.stderr)


def stop_services(settings: Settings | None = None) -> None:
    """Stop what start_services started, by the recorded process ids only."""
    settings = settings or get_settings()
    paths = Paths.of(settings)
    # The worker `election-night` left running goes first, while Kafka can still see it leave.
    _stop_pid(paths.worker_pid, "worker", None, STOP_TIMEOUT_S)
    _stop_pid(paths.kafka_pid, "kafka", _kafka_expect(paths), STOP_TIMEOUT_S)
    _stop_pid(paths.redis_pid, "redis", _redis_expect(settings), STOP_TIMEOUT_S)


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
    args = parser.parse_args(argv)
    try:
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
