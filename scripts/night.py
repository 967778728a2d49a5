"""The whole night in one command: services up, a worker running, the replay, the final state."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from schemas.results import StateOfParties
from scripts.chaos import ChaosRates
from scripts.replay import ReplayError, build_outgoing, kafka_sender, replay, summary_table
from scripts.reset_election import reset as reset_keys
from scripts.services import ServiceError, read_pid, start_services
from scripts.state_table import state_table
from streams.connections import kafka_client_options, redis_from_settings
from streams.rules.alerts.story import last_declaration_told
from streams.rules.reference import ReferenceDataError, load_register
from streams.settings import Settings, get_settings
from streams.store.holds import DeskHolds
from streams.store.outbox import Outbox
from streams.store.tally_store import TallyStore


def worker_pid_file(settings: Settings) -> Path:
    return settings.run_dir / "worker.pid"


def start_worker(settings: Settings, console: Console) -> int:
    """Start a Faust worker in the background (once); returns its pid."""
    pid_file = worker_pid_file(settings)
    running = read_pid(pid_file)
    if running is not None:
        console.print(f"worker already running (pid {running})")
        return running
    log_dir = settings.run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / "worker.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "streams.worker",
            "worker",
            "-l",
            "info",
            "--web-host",
            settings.web_host,
            "--web-port",
            str(settings.web_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(str(process.pid))
    return process.pid


def wait_for_health(settings: Settings, pid: int, timeout_s: float = 120.0) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise ServiceError(
                f"the worker exited; read {settings.run_dir / 'logs' / 'worker.log'}"
            ) from None
        time.sleep(0.5)
    raise ServiceError(f"the worker did not answer {url} within {timeout_s:.0f}s")


async def reset(settings: Settings) -> int:
    return await reset_keys(settings.redis_url, settings.election_id, settings.redis_key_prefix)


async def wait_until_published(
    settings: Settings, seats: int, console: Console, timeout_s: float = 600.0
) -> tuple[StateOfParties, dict[str, int], Counter[str]]:
    """Wait until every seat is tallied and every output of it is on Kafka."""
    redis = redis_from_settings(settings)
    store = TallyStore(redis, settings.election_id, settings.redis_key_prefix)
    register = load_register(settings.data_dir)
    outbox = Outbox(redis, store.ns)
    holds = DeskHolds(redis, store.ns)
    deadline = time.monotonic() + timeout_s
    try:
        with console.status("waiting for the worker to tally and publish ...") as status:
            while True:
                state = await store.state(register)
                # A rehearsal's held alerts go by themselves after a while: the night is
                # told once they have (one that waits for an editor is left on the desk).
                progress, due = await holds.progress_with_holds()
                status.update(
                    f"tallied {state.seats_declared}/{seats} seats, "
                    f"published {progress.published}/{progress.queued} outputs, "
                    f"{due} held alerts still to go by themselves"
                )
                # With every seat in, the last declaration is told once the watermark passes
                # it, after the last change's outputs: the night is over only then.
                whole = state.seats_declared < register.total_seats or last_declaration_told(
                    await outbox.moments_told()
                )
                if (
                    state.seats_declared >= seats
                    and progress.announced >= state.sequence
                    and progress.published >= progress.queued > 0
                    and whole
                    and not due
                ):
                    break
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"after {timeout_s:.0f}s only {state.seats_declared} seats tallied; "
                        f"read {settings.run_dir / 'logs' / 'worker.log'}"
                    )
                await asyncio.sleep(0.5)
        counters = await store.counters()
        alerts: Counter[str] = Counter()
        for item in await outbox.read(after=0, count=100_000):
            if item.output.topic == "alerts":
                alerts[orjson.loads(item.output.value)["type"]] += 1
        return state, counters, alerts
    finally:
        await redis.aclose()


def stop_worker(settings: Settings) -> None:
    pid_file = worker_pid_file(settings)
    pid = read_pid(pid_file)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while read_pid(pid_file) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if read_pid(pid_file) is not None:
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _counts_table(title: str, counts: Mapping[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    return table


def messages_consumed(counters: Mapping[str, int]) -> int:
    """Messages consumed from the declarations topic: the `validation:*` counters.

    Each message is counted once there, as `validation:accepted` or as
    `validation:rejected:<reason>`. The `tally:*` counters count the accepted ones again by
    outcome, and `kafka:redelivered` counts a message delivered again after a crash, so
    adding every counter together counts most messages twice.
    """
    return sum(count for name, count in counters.items() if name.startswith("validation:"))


def accounted_table(counters: Mapping[str, int]) -> Table:
    """Every outcome counter, then the messages consumed (accepted plus every rejection)."""
    table = _counts_table("Every message accounted for", counters)
    table.add_section()
    table.add_row("messages consumed", str(messages_consumed(counters)))
    return table


def alerts_table(alerts: Mapping[str, int]) -> Table:
    """The alerts of the night by type, then how many in all."""
    table = _counts_table("Alerts of the night", alerts)
    table.add_section()
    table.add_row("total", str(sum(alerts.values())))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="election-night",
        description="Run election night 2024: services, a worker, the replay, the final state.",
    )
    parser.add_argument("--chaos", type=int, metavar="SEED", help="replay with faults")
    parser.add_argument("--speed", default="max", help="N× real time, or max (default)")
    parser.add_argument(
        "--stop-worker", action="store_true", help="stop the worker at the end (default: keep)"
    )
    parser.add_argument("--keep-state", action="store_true", help="do not reset the tallies")
    args = parser.parse_args(argv)
    settings = get_settings()
    console = Console()
    if settings.mode != "rehearsal":
        # Its worker would dead-letter the whole replay as wrong_mode: 2024 is a rehearsal.
        print(
            "election-night: the replay of 2024 is a rehearsal, and ELECTION_MODE is "
            f"{settings.mode}: unset it (or set it to rehearsal) to run the night",
            file=sys.stderr,
        )
        return 1
    try:
        start_services(settings)
        if not args.keep_state:
            removed = asyncio.run(reset(settings))
            console.print(f"reset {settings.election_id}: removed {removed} keys")
        pid = start_worker(settings, console)
        wait_for_health(settings, pid)
        console.print(
            f"worker running (pid {pid}): http://{settings.web_host}:{settings.web_port}/"
        )
        console.print(
            "[black on yellow] REHEARSAL [/] 2024 replayed: every message and output says "
            "rehearsal, and the live page shows it"
        )
        feed = build_outgoing(settings.data_dir, args.chaos, ChaosRates())
        speed = None if args.speed == "max" else float(args.speed)
        with kafka_sender(
            settings.kafka_bootstrap_servers,
            settings.topic_declarations,
            settings.topic_partitions,
            kafka_client_options(settings),
        ) as send:
            report = replay(feed, send, speed)
        console.print(summary_table(report))
        state, counters, alerts = asyncio.run(
            wait_until_published(settings, report.seats_declared, console)
        )
    except (ServiceError, ReplayError, ReferenceDataError) as error:
        print(f"election-night: {error}", file=sys.stderr)
        return 1
    console.print(accounted_table(counters))
    console.print(alerts_table(alerts))
    console.print(state_table(state))
    if args.stop_worker:
        stop_worker(settings)
    else:
        console.print(
            f"Live page: http://{settings.web_host}:{settings.web_port}/  "
            "(stop everything with: election-services stop)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
