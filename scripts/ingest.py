"""Take an outside feed into the declarations topic: `election-ingest pa --watch DIR`.

    election-ingest pa --watch /srv/pa-drop                  # PA's rehearsal feed ids
    election-ingest pa --watch /srv/pa-drop --feed rehearsal --poll-interval 0.5

Runs until stopped; progress is kept in Redis, so a restart carries on where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import redis
from kafka.errors import KafkaError

from streams.connections import ConnectionSettingsError, sync_redis_from_settings
from streams.feeds.pa.mapping import load_feed_mapping
from streams.ingest.drop_folder import DropFolder
from streams.ingest.kafka_output import OutputNotAcknowledged, kafka_feed_output
from streams.ingest.pa_folder import PaFolderIngest, PollReport
from streams.ingest.progress import IngestProgress
from streams.rules.reference import ReferenceDataError, load_register
from streams.settings import get_settings

log = logging.getLogger("election-ingest")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--poll-interval must be positive")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="election-ingest", description="Take an outside feed into the declarations topic."
    )
    feeds = parser.add_subparsers(dest="source", required=True)
    pa = feeds.add_parser("pa", help="PA's election XML from a drop folder")
    pa.add_argument("--watch", type=Path, required=True, metavar="DIR", help="the drop folder")
    pa.add_argument("--feed", default="rehearsal", help="whose ids the files carry")
    pa.add_argument(
        "--poll-interval",
        type=_interval,
        default=0.5,
        metavar="SECONDS",
        help="between looks at the folder; a file is taken once unchanged across one (0.5)",
    )
    pa.add_argument("--data-dir", type=Path, default=settings.data_dir)
    return parser.parse_args(argv)


def _told(report: PollReport) -> str:
    refused = ", ".join(f"{reason} {n}" for reason, n in sorted(report.refused.items()))
    return (
        f"took {report.files} files: {report.published} declarations published, "
        f"{report.states_of_parties} states of the parties, "
        f"{report.refused.total()} refused{f' ({refused})' if refused else ''}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    if not args.watch.is_dir():
        print(f"election-ingest: no folder {args.watch}", file=sys.stderr)
        return 1
    try:
        register = load_register(args.data_dir)
        mapping = load_feed_mapping(args.data_dir, args.feed, register)
        output = kafka_feed_output(settings)
    except (ReferenceDataError, ConnectionSettingsError, KafkaError) as error:
        print(f"election-ingest: {error}", file=sys.stderr)
        return 1
    try:
        progress = IngestProgress(
            sync_redis_from_settings(settings),
            settings.redis_key_prefix,
            register.election_id,
            mapping.source,
        )
        ingest = PaFolderIngest(DropFolder(args.watch), progress, output, mapping, register)
        log.info("watching %s for PA feed %s", args.watch, args.feed)
        while True:
            try:
                report = ingest.poll()
            except (OutputNotAcknowledged, redis.RedisError, OSError) as error:
                log.error("poll not recorded, its files are taken again next poll: %s", error)
            else:
                if report.files:
                    log.info(_told(report))
            time.sleep(args.poll_interval)
    except redis.RedisError as error:
        print(f"election-ingest: cannot read progress from Redis: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        output.close()


if __name__ == "__main__":
    sys.exit(main())
