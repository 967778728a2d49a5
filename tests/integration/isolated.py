"""A Kafka broker or Redis server of one test's own, to kill and restart without touching the
shared ones that other tests (and other people) are using."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from scripts.services import (
    Paths,
    ServiceError,
    kafka_answers,
    port_in_use,
    read_pid,
    redis_answers,
    start_kafka,
    start_redis,
)
from streams.settings import Settings, get_settings
from tests.integration.helpers import free_port

START_TIMEOUT_S = 120.0


def _settings(root: Path, **ports: int) -> Settings:
    # The broker's jars are shared with the project's own services: fetched once, not per test.
    shared_libs = Paths.of(get_settings()).kafka_libs
    return Settings(run_dir=root, kafka_libs_dir=shared_libs, kafka_heap="256m", **ports)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _wait_gone(pid: int, is_running: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while is_running() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our child when started in-process: reap it
        time.sleep(0.05)
    if is_running():
        raise AssertionError(f"pid {pid} still runs {timeout}s after it was signalled")


class IsolatedKafka:
    """A single-node KRaft broker on free ports under `root`; its log survives a restart."""

    def __init__(self, root: Path) -> None:
        self.settings = _settings(root, kafka_port=free_port(), kafka_controller_port=free_port())
        self.paths = Paths.of(self.settings)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def pid(self) -> int | None:
        return read_pid(self.paths.kafka_pid, str(self.paths.kafka_properties))

    def start(self) -> float:
        """Start (or restart, on the same data folder) and return the seconds until it answers."""
        began = time.monotonic()
        try:
            self.paths.run.mkdir(parents=True, exist_ok=True)
            start_kafka(self.settings, self.paths)
        except ServiceError as error:
            raise AssertionError(f"the test's own Kafka broker cannot start: {error}") from error
        while not kafka_answers(self.settings):
            if self.pid() is None:
                raise AssertionError(
                    f"the test's own Kafka broker exited:\n{_tail(self.paths.kafka_server_log)}"
                )
            if time.monotonic() - began > START_TIMEOUT_S:
                raise AssertionError(
                    f"the test's own Kafka broker did not answer in {START_TIMEOUT_S:.0f}s:\n"
                    f"{_tail(self.paths.kafka_server_log)}"
                )
            time.sleep(0.25)
        return time.monotonic() - began

    def kill(self) -> None:
        """kill -9: no controlled shutdown, the log is recovered at the next start."""
        pid = self.pid()
        assert pid is not None, "the test's own Kafka broker is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, lambda: self.pid() is not None)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            _wait_gone(pid, lambda: self.pid() is not None)
        except AssertionError:
            self.kill()


class IsolatedRedis:
    """A redis-server on a free port under `root`, with the project's persistence settings."""

    def __init__(self, root: Path) -> None:
        self.settings = _settings(root, redis_port=free_port())
        self.paths = Paths.of(self.settings)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.settings.redis_port}/0"

    def pid(self) -> int | None:
        return read_pid(self.paths.redis_pid, f":{self.settings.redis_port}")

    def start(self) -> None:
        try:
            self.paths.run.mkdir(parents=True, exist_ok=True)
            start_redis(self.settings, self.paths)
        except ServiceError as error:
            raise AssertionError(f"the test's own redis-server cannot start: {error}") from error
        deadline = time.monotonic() + START_TIMEOUT_S
        while not redis_answers(self.settings):
            if time.monotonic() > deadline or "aborting" in _tail(self.paths.redis_log, 3):
                raise AssertionError(
                    f"the test's own redis-server did not answer:\n{_tail(self.paths.redis_log)}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        pid = self.pid()
        assert pid is not None, "the test's own redis-server is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, lambda: self.pid() is not None)

    def crash(self, lose_files: bool) -> None:
        """kill -9 and restart: from its append-only file (up to a second behind), or, with
        `lose_files`, empty (a lost disk or a new machine), which no file can prevent."""
        self.kill()
        # A snapshot child forked before the kill outlives it, listening socket and all,
        # until its save is done: the new server could not bind the port before then.
        deadline = time.monotonic() + 30
        while port_in_use(self.settings.redis_port):
            assert time.monotonic() < deadline, "the killed redis-server's port stays taken"
            time.sleep(0.05)
        if lose_files:
            shutil.rmtree(self.paths.redis / "appendonlydir", ignore_errors=True)
            (self.paths.redis / "dump.rdb").unlink(missing_ok=True)
        self.start()

    def lose(self) -> None:
        self.crash(lose_files=True)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, lambda: self.pid() is not None)
