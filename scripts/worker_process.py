"""Real Faust worker processes for scripts and tests: start, wait for a log line, stop, kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = PROJECT_ROOT / "artifacts" / "workers"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WorkerProcess:
    """A Faust worker as a real subprocess: `with WorkerProcess("streams.worker:app", env) as w:`.

    `env` overrides this process's environment (ELECTION_KAFKA_BOOTSTRAP_SERVERS,
    ELECTION_REDIS_URL, topic names, ELECTION_REDIS_KEY_PREFIX ...). ELECTION_APP_ID defaults to a
    unique consumer group, ELECTION_WEB_PORT to a free port, and Faust's data directory goes
    under artifacts/ instead of the repo root. The log is artifacts/workers/<name>-<id>.log.
    """

    def __init__(self, app: str, env: dict[str, str], name: str = "worker") -> None:
        self.app = app
        run_id = uuid.uuid4().hex[:8]
        self.web_port = int(env.get("ELECTION_WEB_PORT") or free_port())
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        app_id = env.get("ELECTION_APP_ID") or f"test-{name}-{run_id}"
        self.env = {
            **os.environ,
            # Faust keeps table state in "<app id>-data" under the working folder, i.e. the
            # repo root; a worker restarted with the same ELECTION_APP_ID finds its folder again.
            "APP_DATADIR": str(LOG_DIR / f"{app_id}-data"),
            **env,
            "ELECTION_APP_ID": app_id,
            "ELECTION_WEB_PORT": str(self.web_port),
        }
        self.log_path = LOG_DIR / f"{name}-{run_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faust",
                    "-A",
                    self.app,
                    "worker",
                    "-l",
                    "info",
                    "--web-port",
                    str(self.web_port),
                    "--web-host",
                    "127.0.0.1",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a SIGINT aimed at pytest does not also hit the worker.
                start_new_session=True,
            )
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} in worker log after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stacks(self, settle_s: float = 1.0) -> str:
        """The stack of every asyncio task in the worker, as mode's SIGUSR1 handler logs it:
        where a worker that is alive but making no progress is waiting."""
        if self.process is None or self.process.poll() is not None:
            return ""
        before = len(self.log())
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(settle_s)
        return self.log()[before:]

    def publishers(self) -> list[int]:
        """The live publisher processes this worker runs (streams.pipeline.publisher_process)."""
        if self.process is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            state, parent = stat[0], int(stat[1])
            if parent == self.process.pid and state != "Z" and b"publisher_process" in cmdline:
                found.append(int(entry.name))
        return found

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash looks like to Kafka and Redis."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            # A failing test shows what the worker was doing, not only what it had logged:
            # pytest prints a failed test's captured stderr.
            tail = self.tail(80)
            stacks = self.stacks()
            print(f"--- {self.log_path.name}: last lines ---\n{tail}", file=sys.stderr)
            if stacks:
                print(f"--- its tasks when the test failed ---\n{stacks}", file=sys.stderr)
        self.stop()
