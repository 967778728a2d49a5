"""What every benchmark script prints around its tables: progress, the run's header, the file."""

from __future__ import annotations

import argparse
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


def add_run_arguments(parser: argparse.ArgumentParser, bootstrap: str, redis_url: str) -> None:
    """The arguments of every benchmark that starts its own workers: where Kafka and Redis
    are, settings for the workers, and a Markdown file to append the results to."""
    parser.add_argument("--bootstrap-servers", default=bootstrap)
    parser.add_argument("--redis-url", default=redis_url)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="worker setting"
    )
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")


def worker_env(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, str]:
    """The --env settings as a mapping; a pair without '=' is a usage error."""
    if any("=" not in pair for pair in pairs):
        parser.error("--env takes NAME=VALUE")
    return dict(pair.split("=", 1) for pair in pairs)
