"""What every benchmark script prints around its tables: progress, the run's header, the file."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages now: the machine is shared, so each run says it."""
    return " ".join(Path("/proc/loadavg").read_text().split(" ", 3)[:3])


def machine(services: str, load_before: str) -> str:
    return (
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"{services} on the same machine; load average before the run: {load_before}"
    )


@contextlib.contextmanager
def timer() -> Iterator[Callable[[], float]]:
    began = time.monotonic()
    yield lambda: time.monotonic() - began


def publish(text: str, write: Path | None) -> None:
    """Print a run's Markdown section, and append it to `write` when given."""
    print(text)
    if write:
        write.parent.mkdir(parents=True, exist_ok=True)
        with write.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
