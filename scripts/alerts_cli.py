"""`alerts tail`: the alerts of the night as they reach the alerts topic, for the push desk."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import IO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from schemas.alert import Alert, AlertPriority
from streams.connections import kafka_client_options
from streams.settings import get_settings

POLL_MS = 500
PRIORITY_STYLE = {
    AlertPriority.FLASH: "bold white on red",
    AlertPriority.HIGH: "bold red",
    AlertPriority.NORMAL: "yellow",
    AlertPriority.LOW: "dim",
}


class AlertsCliError(RuntimeError):
    """A one-line reason the alerts cannot be shown."""


def alert_line(alert: Alert) -> str:
    """One alert as rich markup; every text from the feed is escaped, never interpreted."""
    style = PRIORITY_STYLE[alert.priority]
    when = alert.occurred_at.strftime("%a %H:%M")
    amends = f" [dim](supersedes {escape(alert.supersedes[0])})[/]" if alert.supersedes else ""
    rehearsal = "[black on yellow]REHEARSAL[/] " if alert.rehearsal else ""
    return (
        f"{when}  [{style}]{alert.priority.value.upper():<6}[/]  "
        f"{rehearsal}{escape(alert.headline)}{amends}\n"
        f"               [dim]{escape(alert.type.value)} · {escape(alert.alert_id)}[/]"
    )


def read_alerts(
    bootstrap: str,
    topic: str,
    from_beginning: bool,
    follow: bool,
    idle_timeout_s: float | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(offset, value) of each message on the alerts topic, in order (it has one partition per
    election's publisher, but every partition is read). Without `follow`, ends at the end of
    the topic as it was when called."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=10_000,
            **kafka_client_options(get_settings()),  # SASL/TLS as configured
        )
        partitions = consumer.partitions_for_topic(topic)
    except (KafkaError, OSError, ValueError) as error:
        raise AlertsCliError(f"cannot reach Kafka at {bootstrap}: {error}") from None
    if not partitions:
        consumer.close()
        raise AlertsCliError(f"no topic {topic!r} on {bootstrap}: has a worker run yet?")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    if from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        consumer.seek_to_end(*assigned)
    end = consumer.end_offsets(assigned)
    idle_since = time.monotonic()
    try:
        while True:
            batch = consumer.poll(timeout_ms=POLL_MS)
            for records in batch.values():
                for record in records:
                    idle_since = time.monotonic()
                    yield record.offset, record.value
            if not follow and all(consumer.position(tp) >= end[tp] for tp in assigned):
                return
            if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                return
    finally:
        consumer.close()


def tail(args: argparse.Namespace, console: Console) -> int:
    settings = get_settings()
    topic = args.topic or settings.topic_alerts
    wanted = {AlertPriority(p) for p in args.priority} if args.priority else None
    shown = 0
    try:
        for offset, value in read_alerts(
            settings.kafka_bootstrap_servers,
            topic,
            from_beginning=args.from_beginning,
            follow=not args.no_follow,
            idle_timeout_s=args.idle_timeout,
        ):
            try:
                alert = Alert.model_validate_json(value)
            except ValidationError as error:
                # Never silent: a message that is not an alert is named, then skipped.
                console.print(
                    f"[red]offset {offset}: not an alert ({error.error_count()} errors)[/]"
                )
                continue
            if wanted is not None and alert.priority not in wanted:
                continue
            if args.json:
                console.out(alert.model_dump_json(), highlight=False)
            else:
                console.print(alert_line(alert), highlight=False)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    except AlertsCliError as error:
        print(f"alerts: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alerts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tail_parser = commands.add_parser(
        "tail", help="print alerts as they are published (Ctrl-C to stop)"
    )
    tail_parser.add_argument(
        "--from-beginning", action="store_true", help="start with the night's first alert"
    )
    tail_parser.add_argument(
        "--no-follow", action="store_true", help="stop at the end of the topic instead of waiting"
    )
    tail_parser.add_argument("--count", type=int, help="stop after this many alerts")
    tail_parser.add_argument(
        "--priority",
        action="append",
        choices=[p.value for p in AlertPriority],
        help="only these priorities (repeatable)",
    )
    tail_parser.add_argument("--json", action="store_true", help="one alert JSON per line")
    tail_parser.add_argument("--topic", help="the alerts topic (default ELECTION_TOPIC_ALERTS)")
    tail_parser.add_argument(
        "--idle-timeout", type=float, help="stop after this many seconds without an alert"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(file=out, soft_wrap=True) if out is not None else Console(soft_wrap=True)
    return tail(args, console)


if __name__ == "__main__":
    sys.exit(main())
