"""The publisher in a process of its own beside its worker: started, watched and stopped by it."""

# The publisher (detectors, snapshots, the outbox, sends to Kafka) was a third of a worker's
# CPU, on the same core and event loop as the declaration agent: each tally batch waited for
# it. In a child process it runs on the other core, and the tally never waits on it. It is
# still one publisher per election: the children of every worker compete for the same lease.

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from typing import Any

from streams.blas import one_blas_thread
from streams.collector import settle_the_heap
from streams.pipeline.context import ElectionApp, WorkerContext
from streams.pipeline.publisher import TICK_S, Publisher, follow
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

MODULE = "streams.pipeline.publisher_process"
STOP_WAIT_S = 10.0  # a stopping child flushes its producer and lets the lease go
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class PublisherChild:
    """The worker's side: one child process at a time, started again if it ends."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False

    async def keep_running(self) -> None:
        """Start the child if it is not running (called every second by the worker)."""
        if self.stopping:
            return
        if self.process is not None:
            if self.process.returncode is None:
                return
            log.error(
                "the publisher process %d ended with exit code %s; starting another",
                self.process.pid,
                self.process.returncode,
            )
        # The child reads the same environment as its worker: the same settings.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULE, str(os.getpid())
        )
        log.info("publisher process %d started", self.process.pid)

    async def stop(self) -> None:
        """Ask the child to stop (SIGTERM), and end it if it has not within STOP_WAIT_S."""
        self.stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)
        except TimeoutError:
            log.warning("publisher process %d did not stop within %.0fs", process.pid, STOP_WAIT_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def register(app: ElectionApp) -> None:
    """Run the publisher of `app`'s worker in a child process, kept running while it lives."""
    child = PublisherChild()

    @app.task
    async def start_publisher() -> None:
        await child.keep_running()

    @app.timer(interval=1.0, name="streams.publisher_process.keep_publisher_running")
    async def keep_publisher_running() -> None:
        await child.keep_running()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_publisher(sender: Any, **kwargs: Any) -> None:
        await child.stop()


def _end_with_parent() -> None:
    """Have the kernel kill this process the moment its worker dies (Linux): a crashed worker
    is a crash of its publisher too, with no goodbye, as when the two were one process."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def publish(settings: Settings, parent: int) -> None:
    """Lead or stand by as the election's publisher until stopped or the worker is gone."""
    publisher = Publisher(WorkerContext(settings))
    settle_the_heap(settings.gc_young_threshold)  # the register and watchlist, loaded above
    one_blas_thread()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)

    async def lead() -> None:
        while True:
            await follow(publisher)
            await asyncio.sleep(TICK_S)

    async def watch_worker() -> None:
        # Where the kernel cannot tell it (or the worker died before it was asked to).
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        log.warning("worker %d is gone: the publisher stops", parent)
        stopped.set()

    tasks = [asyncio.create_task(lead()), asyncio.create_task(watch_worker())]
    await stopped.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await publisher.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m streams.pipeline.publisher_process <worker pid>`, as the worker starts it."""
    args = sys.argv[1:] if argv is None else argv
    parent = int(args[0]) if args else os.getppid()
    _end_with_parent()
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] [publisher] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(publish(get_settings(), parent))


if __name__ == "__main__":
    main()
