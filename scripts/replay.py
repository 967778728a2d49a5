"""Replay election night 2024 into the declarations topic, at any speed, with optional chaos.

    election-replay --speed max                 # the whole night as fast as Kafka takes it
    election-replay --speed 60 --from 23:00 --until 02:00
    election-replay --dry-run --output night.jsonl
    election-replay --speed max --chaos 7       # duplicates, reordering, corrections...
    election-replay --format pa --out /tmp/pa --serve-ftp   # PA files, also over FTP

`--from` and `--until` are clock times of the night, both inclusive: 18:00-23:59 means
polling day (4 July), earlier times the morning after (5 July); an ISO datetime such as
2024-07-06T18:00 (BST unless it carries an offset) reaches any moment. The window applies to
send times, the exit poll's (22:00) included. Pacing starts at the first message sent.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scripts.chaos import ChaosRates, Outgoing, clean_feed, inject_chaos
from scripts.night_builder import build_night
from scripts.pa_ftp_server import STOP_CHECK_S, read_only_ftp
from scripts.pa_pack import folder_sender, pa_feed
from streams.connections import kafka_client_options
from streams.feeds.pa.mapping import load_feed_mapping
from streams.rules.reference import ReferenceDataError, load_register
from streams.settings import get_settings

Send = Callable[[str, bytes], None]

# The PA feed whose ids a rehearsal pack's files carry (streams/data/ge2024/pa-feeds/).
PA_REHEARSAL_FEED = "rehearsal"
# Where `--serve-ftp` listens unless told (FTP's own 21 needs root).
PA_FTP_PORT = 2121
# A broker that does not answer within this is reported as unreachable, not waited for.
CONNECT_TIMEOUT_MS = 5000


class ReplayError(RuntimeError):
    """A one-line reason the replay cannot run."""


@dataclass
class ReplayReport:
    """What was sent: by label (what it is on the night) and by kind (what it is on the wire)."""

    sent: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    seats_declared: int = 0
    must_be_rejected: int = 0
    reordered: int = 0
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def count(self, item: Outgoing) -> None:
        self.sent[item.label] += 1
        self.by_kind[item.kind] += 1
        self.seats_declared += item.seat_declared
        self.must_be_rejected += item.must_be_rejected
        self.reordered += item.reordered
        self.first_at = self.first_at or item.at
        self.last_at = item.at


def parse_clock(text: str, polling_day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """`23:00` is polling night, `07:00` the morning after; ISO datetimes are taken as they are
    (in `tz` when they carry no offset)."""
    try:
        if "T" in text or "-" in text or " " in text.strip():
            moment = dt.datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=tz)
        hours, minutes = (int(part) for part in text.split(":"))
        day = polling_day if hours >= 18 else polling_day + dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=tz)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a clock time (HH:MM) or ISO datetime: {text!r}"
        ) from exc


def build_outgoing(
    data_dir: Path,
    chaos_seed: int | None = None,
    rates: ChaosRates | None = None,
    start: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
) -> list[Outgoing]:
    """The messages of the night in send order, with chaos from a seed, within a window."""
    night = build_night(data_dir)
    feed = clean_feed(night) if chaos_seed is None else inject_chaos(night, chaos_seed, rates)
    tz = night.register.polls_close.tzinfo
    assert tz is not None  # load_register reads polls_close with its offset
    day = night.register.polls_close.date()

    def moment(value: str | dt.datetime) -> dt.datetime:
        return value if isinstance(value, dt.datetime) else parse_clock(value, day, tz)

    begin = moment(start) if start is not None else None
    end = moment(until) if until is not None else None
    if begin is not None and end is not None and end < begin:
        raise ReplayError(f"--until {end:%Y-%m-%d %H:%M} is before --from {begin:%Y-%m-%d %H:%M}")
    return [
        item
        for item in feed
        if (begin is None or item.at >= begin) and (end is None or item.at <= end)
    ]


def replay(
    feed: Sequence[Outgoing],
    send: Send,
    speed: float | None,
    on_progress: Callable[[Outgoing, ReplayReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Send the feed in order through `send(key, value)`; `speed` is a multiple of real
    time, None for as fast as the sender takes it."""
    report = ReplayReport()
    began = time.monotonic()
    previous: dt.datetime | None = None
    try:
        for item in feed:
            if speed is not None and previous is not None and item.at > previous:
                sleep((item.at - previous).total_seconds() / speed)
            previous = item.at if previous is None else max(previous, item.at)
            send(item.key, item.value)
            report.count(item)
            if on_progress is not None:
                on_progress(item, report)
    finally:
        report.elapsed_s = time.monotonic() - began
    return report


@contextmanager
def kafka_sender(
    bootstrap: str, topic: str, partitions: int, options: Mapping[str, Any] | None = None
) -> Iterator[Send]:
    """Send to `topic` (created with `partitions` if missing); on leaving, every message has
    been acknowledged by all in-sync replicas, or ReplayError says how many were not.
    `options` are the security options of streams.connections.kafka_client_options."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    timeouts = {
        "bootstrap_timeout_ms": CONNECT_TIMEOUT_MS,
        "request_timeout_ms": 10_000,
        **(options or {}),
    }
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **timeouts)
        try:
            # Kept the whole night (ELECTION_INPUT_RETENTION_MS): the tallies are rebuilt from it;
            # with the copies a worker would give it.
            settings = get_settings()
            config = {
                **settings.topic_config(),
                "retention.ms": str(settings.input_retention_ms),
            }
            admin.create_topics(
                [
                    NewTopic(
                        topic, partitions, settings.topic_replication_factor, topic_configs=config
                    )
                ]
            )
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried batch is never written twice
            linger_ms=20,
            max_block_ms=10_000,
            **timeouts,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise ReplayError(
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): "
            "start it with `election-services start` or set ELECTION_KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    failures: list[BaseException] = []

    def send(key: str, value: bytes) -> None:
        try:
            future = producer.send(topic, key=key.encode(), value=value)
        except KafkaError as exc:
            raise ReplayError(f"Kafka refused a message for {key}: {exc}") from exc
        future.add_errback(failures.append)

    try:
        yield send
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    if failures:
        raise ReplayError(f"{len(failures)} messages were not acknowledged: {failures[0]}")


@contextmanager
def jsonl_sender(handle: IO[bytes], feed: Sequence[Outgoing] = ()) -> Iterator[Send]:
    """Dry run: one JSON line per message, {"key", "value"} where value is the exact text that
    would be sent ("value_b64" instead when it is not UTF-8), plus "at", "label" and "kind"
    when given the feed being replayed (its items are matched to sends in order)."""
    position = iter(feed)

    def send(key: str, value: bytes) -> None:
        line: dict[str, str] = {}
        item = next(position, None)
        if item is not None and item.key == key:
            line.update(at=item.at.isoformat(), label=item.label, kind=item.kind)
        line["key"] = key
        try:
            line["value"] = value.decode("utf-8")
        except UnicodeDecodeError:
            line["value_b64"] = base64.b64encode(value).decode("ascii")
        handle.write(orjson.dumps(line) + b"\n")

    yield send
    handle.flush()


def summary_table(report: ReplayReport) -> Table:
    table = Table(title=f"Sent {report.total} messages in {report.elapsed_s:.1f}s")
    table.add_column("label")
    table.add_column("messages", justify="right")
    for label, count in sorted(report.sent.items()):
        table.add_row(label, str(count))
    table.add_section()
    for kind, count in sorted(report.by_kind.items()):
        table.add_row(f"kind {kind}", str(count))
    table.add_section()
    table.add_row("seats declared", str(report.seats_declared))
    table.add_row("reordered", str(report.reordered))
    table.add_row("must be rejected", str(report.must_be_rejected))
    if report.first_at and report.last_at:
        # A row, not a caption: a caption wraps to the width of a narrow table.
        span = f"{report.first_at:%a %H:%M} to {report.last_at:%a %H:%M}"
        table.add_row("night clock", span)
    table.add_row("total", str(report.total))
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


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, not {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is from 0 (any free one) to 65535")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    defaults = ChaosRates()
    parser = argparse.ArgumentParser(
        prog="election-replay",
        description="Replay the night of 4 July 2024 into the declarations topic.",
        epilog=(
            "Times before 18:00 mean 5 July; ISO datetimes (BST unless given an offset) reach "
            "any moment, e.g. --until 2024-07-06T18:00. Both ends are inclusive."
        ),
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=argparse.SUPPRESS,
        help="N× real time, or max (default 60; max for a dry run)",
    )
    parser.add_argument("--from", dest="start", metavar="TIME", help="first send time, e.g. 23:00")
    parser.add_argument("--until", metavar="TIME", help="last send time, e.g. 07:00")
    parser.add_argument("--dry-run", action="store_true", help="JSON lines instead of Kafka")
    parser.add_argument("--output", type=Path, help="dry-run file (implies --dry-run)")
    parser.add_argument("--topic", default=settings.topic_declarations)
    parser.add_argument("--bootstrap-servers", default=settings.kafka_bootstrap_servers)
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir)
    parser.add_argument("--progress", action="store_true", help="progress bar even without a TTY")
    pa = parser.add_argument_group("PA rehearsal pack (see scripts/pa_pack.py)")
    pa.add_argument(
        "--format",
        choices=("json", "pa"),
        default="json",
        help="pa: write the night as PA XML files into --out instead of sending it",
    )
    pa.add_argument("--out", type=Path, metavar="DIR", help="drop folder of --format pa")
    pa.add_argument("--feed", default=PA_REHEARSAL_FEED, help="PA feed whose ids the files use")
    pa.add_argument(
        "--serve-ftp",
        action="store_true",
        help="also serve --out read-only over FTP on 127.0.0.1, with PA's .timestamp, "
        "until interrupted",
    )
    pa.add_argument(
        "--ftp-port",
        type=_port,
        default=PA_FTP_PORT,
        metavar="N",
        help=f"port of --serve-ftp ({PA_FTP_PORT}; 0: any free one)",
    )
    chaos = parser.add_argument_group("chaos (deterministic fault injection, see scripts/chaos.py)")
    chaos.add_argument("--chaos", type=int, metavar="SEED", help="inject faults from SEED")
    chaos.add_argument("--duplicate-rate", type=_rate, default=defaults.duplicate, metavar="P")
    chaos.add_argument("--reorder-rate", type=_rate, default=defaults.reorder, metavar="P")
    chaos.add_argument("--correction-rate", type=_rate, default=defaults.correction, metavar="P")
    chaos.add_argument("--rush-rate", type=_rate, default=defaults.rush, metavar="P")
    chaos.add_argument(
        "--recount-closest", type=_count, default=defaults.recount_closest, metavar="N"
    )
    chaos.add_argument("--malformed-rate", type=_rate, default=defaults.malformed, metavar="P")
    chaos.add_argument("--invalid-rate", type=_rate, default=defaults.invalid, metavar="P")
    args = parser.parse_args(argv)
    args.dry_run = args.dry_run or args.output is not None
    if args.format == "pa" and (args.out is None or args.dry_run):
        parser.error("--format pa writes files into --out DIR (and is no dry run)")
    if args.serve_ftp and args.format != "pa":
        parser.error("--serve-ftp serves the files of --format pa")
    if args.format == "pa":
        # A PA file is a declaration in XML: broken JSON or bad figures have no PA form.
        args.malformed_rate = args.invalid_rate = 0.0
    if not hasattr(args, "speed"):
        args.speed = None if args.dry_run else 60.0
    return args


def _progress(console: Console, show: bool) -> Progress:
    # redirect_stdout=False: a dry run's JSON lines on stdout must never pass through rich.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} seats declared"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _say(line: str) -> None:
    # Plain, not through rich, which wraps a long line and would cut the URL in two.
    print(f"election-replay: {line}", file=sys.stderr, flush=True)


@contextmanager
def _served(folder: Path, port: int) -> Iterator[str]:
    # pyftpdlib logs every command unless logging is set up: its warnings are enough here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    with read_only_ftp(folder, port) as url:
        _say(f"serving {folder} read-only at {url} (anonymous): election-ingest pa --ftp {url}")
        yield url


class _Stopped(Exception):
    """SIGTERM: stop serving, as Ctrl-C does."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def _until_interrupted() -> int:
    """Wait for Ctrl-C, or SIGTERM (a service manager's stop, or `kill`: a shell's background
    job starts with Ctrl-C ignored), the ways to stop a pack served after the night is written."""
    signal.signal(signal.SIGTERM, _stop)
    with suppress(KeyboardInterrupt, _Stopped):
        # A short wait at a time, never one without end: the kernel may hand the signal to the
        # FTP server's thread, and Python raises it here only once this thread runs again.
        while True:
            time.sleep(STOP_CHECK_S)
    return 0


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
    report = ReplayReport()
    try:
        feed = build_outgoing(args.data_dir, args.chaos, rates, args.start, args.until)
        to_stdout = args.dry_run and args.output is None
        if args.format == "pa":
            register = load_register(args.data_dir)
            mapping = load_feed_mapping(args.data_dir, args.feed, register)
            feed = pa_feed(feed, mapping, register)
            sender = folder_sender(args.out, stamped=args.serve_ftp)
        elif args.dry_run:
            handle = sys.stdout.buffer if to_stdout else args.output.open("wb")
            sender = jsonl_sender(handle, feed)
        else:
            settings = get_settings()
            sender = kafka_sender(
                args.bootstrap_servers,
                args.topic,
                settings.topic_partitions,
                kafka_client_options(settings),
            )
        # A bar on the terminal that also shows the JSON lines would tear them apart.
        show = (console.is_terminal or args.progress) and not (to_stdout and sys.stdout.isatty())
        with sender as send, ExitStack() as serving:
            if args.serve_ftp:
                url = serving.enter_context(_served(args.out, args.ftp_port))
            with _progress(console, show) as progress:
                task = progress.add_task("", total=sum(o.seat_declared for o in feed))

                def on_progress(item: Outgoing, so_far: ReplayReport) -> None:
                    nonlocal report
                    report = so_far
                    progress.update(
                        task,
                        completed=so_far.seats_declared,
                        description=f"{item.at:%a %d %b %H:%M}",
                    )

                report = replay(feed, send, args.speed, on_progress)
            if args.serve_ftp:
                console.print(summary_table(report))
                _say(f"the night is written; still serving it at {url} until interrupted")
                return _until_interrupted()
    except (ReferenceDataError, ReplayError, argparse.ArgumentTypeError) as error:
        print(f"election-replay: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"election-replay: {error.strerror or error}: {error.filename or ''}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        console.print(summary_table(report))
        print("election-replay: interrupted", file=sys.stderr)
        return 130
    console.print(summary_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
