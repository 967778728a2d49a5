"""Replay election night 2024 into the declarations topic, at any speed, with optional chaos.

    election-replay --speed max                 # the whole night as fast as Kafka takes it
    election-replay --speed 60 --from 23:00 --until 02:00
    election-replay --dry-run --output night.jsonl
    election-replay --speed max --chaos 7       # duplicates, reordering, corrections...

Clock times before 18:00 mean the morning after polling day (5 July); ISO datetimes work too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from scripts.chaos import ChaosRates, Outgoing, clean_feed, inject_chaos
from scripts.night_builder import build_night
from streams.reference import ReferenceDataError
from streams.settings import get_settings

Send = Callable[[str, bytes], None]


class ReplayError(RuntimeError):
    """A one-line reason the replay cannot run."""


@dataclass
class ReplayReport:
    sent: Counter[str] = field(default_factory=Counter)
    seats_declared: int = 0
    must_be_rejected: int = 0
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def parse_clock(text: str, polling_day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """`23:00` is polling night, `07:00` the morning after; ISO datetimes are taken as they are."""
    try:
        if "T" in text or "-" in text:
            moment = dt.datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=tz)
        hours, minutes = (int(part) for part in text.split(":"))
        day = polling_day if hours >= 18 else polling_day + dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=tz)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a clock time or ISO datetime: {text!r}") from exc


def build_outgoing(
    data_dir: Path,
    chaos_seed: int | None = None,
    rates: ChaosRates | None = None,
    start: str | None = None,
    until: str | None = None,
) -> list[Outgoing]:
    """The messages of the night, in send order, optionally with chaos and a time window."""
    night = build_night(data_dir)
    if chaos_seed is None:
        feed = clean_feed(night.messages())
    else:
        feed = inject_chaos(night.messages(), chaos_seed, rates or ChaosRates())
    tz = night.register.polls_close.tzinfo
    assert tz is not None
    day = night.register.polls_close.date()
    if start:
        begin = parse_clock(start, day, tz)
        feed = [o for o in feed if o.at >= begin]
    if until:
        end = parse_clock(until, day, tz)
        feed = [o for o in feed if o.at <= end]
    return feed


def replay(
    feed: Sequence[Outgoing],
    send: Send,
    speed: float | None,
    on_progress: Callable[[Outgoing, ReplayReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Send the feed in order; `speed` is a multiple of real time, None for as fast as can be."""
    report = ReplayReport()
    began = time.monotonic()
    previous: dt.datetime | None = None
    for item in feed:
        if speed is not None and previous is not None and item.at > previous:
            sleep((item.at - previous).total_seconds() / speed)
        previous = item.at if previous is None else max(previous, item.at)
        send(item.key, item.value)
        report.sent[item.label] += 1
        report.seats_declared += item.seat_declared
        report.must_be_rejected += item.must_be_rejected
        if on_progress is not None:
            on_progress(item, report)
    report.elapsed_s = time.monotonic() - began
    return report


@contextmanager
def kafka_sender(bootstrap: str, topic: str, partitions: int) -> Iterator[Send]:
    """A producer that waits for every acknowledgement before the replay says it is done."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=5, max_block_ms=10000
        )
    except (KafkaError, OSError) as exc:
        raise ReplayError(
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): "
            "start it with `election-services start` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    failures: list[BaseException] = []

    def send(key: str, value: bytes) -> None:
        future = producer.send(topic, key=key.encode(), value=value)
        future.add_errback(failures.append)

    try:
        yield send
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    if failures:
        raise ReplayError(f"{len(failures)} messages were not acknowledged: {failures[0]}")


@contextmanager
def jsonl_sender(handle: IO[bytes]) -> Iterator[Send]:
    """Dry run: one JSON line per message, {"key": ..., "value": <the exact text sent>}."""

    def send(key: str, value: bytes) -> None:
        line = {"key": key, "value": value.decode("utf-8", "replace")}
        handle.write(orjson.dumps(line) + b"\n")

    yield send
    handle.flush()


def summary_table(report: ReplayReport) -> Table:
    table = Table(title=f"Sent {report.total} messages in {report.elapsed_s:.1f}s")
    table.add_column("what")
    table.add_column("messages", justify="right")
    for label, count in sorted(report.sent.items()):
        table.add_row(label, str(count))
    table.add_row("seats declared", str(report.seats_declared))
    table.add_row("must be rejected", str(report.must_be_rejected))
    return table


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--speed takes a number or 'max'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed must be positive")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    defaults = ChaosRates()
    parser = argparse.ArgumentParser(
        prog="election-replay", description="Replay the night of 4 July 2024 into Kafka."
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=argparse.SUPPRESS,
        help="N× real time, or max (default 60; max for a dry run)",
    )
    parser.add_argument("--from", dest="start", help="clock time to start, e.g. 23:00")
    parser.add_argument("--until", help="clock time to stop, e.g. 07:00")
    parser.add_argument("--dry-run", action="store_true", help="JSON lines instead of Kafka")
    parser.add_argument("--output", type=Path, help="dry-run file (default stdout)")
    parser.add_argument("--topic", default=settings.topic_declarations)
    parser.add_argument("--bootstrap-servers", default=settings.kafka_bootstrap_servers)
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir)
    parser.add_argument("--progress", action="store_true", help="progress bar even if no TTY")
    chaos = parser.add_argument_group("chaos (deterministic fault injection)")
    chaos.add_argument("--chaos", type=int, metavar="SEED", help="inject faults from SEED")
    chaos.add_argument("--duplicate-rate", type=float, default=defaults.duplicate)
    chaos.add_argument("--reorder-rate", type=float, default=defaults.reorder)
    chaos.add_argument("--correction-rate", type=float, default=defaults.correction)
    chaos.add_argument("--rush-rate", type=float, default=defaults.rush)
    chaos.add_argument("--recount-closest", type=int, default=defaults.recount_closest)
    chaos.add_argument("--malformed-rate", type=float, default=defaults.malformed)
    chaos.add_argument("--invalid-rate", type=float, default=defaults.invalid)
    args = parser.parse_args(argv)
    if not hasattr(args, "speed"):
        args.speed = None if args.dry_run else 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    rates = ChaosRates(
        duplicate=args.duplicate_rate,
        reorder=args.reorder_rate,
        correction=args.correction_rate,
        rush=args.rush_rate,
        recount_closest=args.recount_closest,
        malformed=args.malformed_rate,
        invalid=args.invalid_rate,
    )
    try:
        feed = build_outgoing(args.data_dir, args.chaos, rates, args.start, args.until)
        if args.dry_run:
            handle = args.output.open("wb") if args.output else sys.stdout.buffer
            sender = jsonl_sender(handle)
        else:
            settings = get_settings()
            sender = kafka_sender(args.bootstrap_servers, args.topic, settings.topic_partitions)
        show = (console.is_terminal or args.progress) and not (args.dry_run and not args.output)
        with (
            sender as send,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} seats"),
                console=console,
                disable=not show,
            ) as progress,
        ):
            task = progress.add_task("night", total=650)

            def on_progress(item: Outgoing, report: ReplayReport) -> None:
                progress.update(
                    task,
                    completed=report.seats_declared,
                    description=f"{item.at:%a %H:%M} BST",
                )

            report = replay(feed, send, args.speed, on_progress)
    except (ReferenceDataError, ReplayError) as error:
        print(f"election-replay: {error}", file=sys.stderr)
        return 1
    console.print(summary_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
