"""Take an outside feed into the declarations topic: `election-ingest pa --watch DIR|--ftp URL`.

    election-ingest pa --watch /srv/pa-drop                  # PA's rehearsal feed ids
    election-ingest pa --watch /srv/pa-drop --feed rehearsal --poll-interval 0.5
    election-ingest pa --ftp ftp://user:password@ftp.example.org:21/results

The files come from a drop folder, or from PA's folder on an FTP server, fetched when its
`.timestamp` changes (streams/ingest/ftp_folder.py); the URL's credentials are never logged.
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

from streams.connections import (
    ConnectionSettingsError,
    redis_from_settings,
    sync_redis_from_settings,
)
from streams.feeds.pa.mapping import load_feed_mapping
from streams.ingest.drop_folder import DropFolder, FeedFolder
from streams.ingest.ftp_folder import FtpFolder, FtpLocation, FtpUrlError, parse_ftp_url
from streams.ingest.kafka_output import OutputNotAcknowledged, kafka_feed_output
from streams.ingest.pa_folder import PaFolderIngest, PollReport
from streams.ingest.progress import IngestProgress
from streams.ingest.totals_check import TotalsCheck
from streams.rules.reference import ReferenceDataError, load_register
from streams.settings import get_settings
from streams.store.tally_reader import BlockingTallyReader

log = logging.getLogger("election-ingest")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--poll-interval must be positive")
    return value


def _ftp_url(text: str) -> FtpLocation:
    try:
        return parse_ftp_url(text)
    except FtpUrlError as error:  # its message never repeats the URL, password and all
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="election-ingest", description="Take an outside feed into the declarations topic."
    )
    feeds = parser.add_subparsers(dest="source", required=True)
    pa = feeds.add_parser("pa", help="PA's election XML from a drop folder or an FTP folder")
    where = pa.add_mutually_exclusive_group(required=True)
    where.add_argument("--watch", type=Path, metavar="DIR", help="the drop folder")
    where.add_argument(
        "--ftp",
        type=_ftp_url,
        metavar="URL",
        help="PA's folder on an FTP server: ftp://[user:password@]host[:port]/folder",
    )
    pa.add_argument("--feed", default="rehearsal", help="whose ids the files carry")
    pa.add_argument(
        "--poll-interval",
        type=_interval,
        default=0.5,
        metavar="SECONDS",
        help="between looks at the folder (at FTP, its .timestamp); a file is taken once "
        "unchanged across one (0.5)",
    )
    pa.add_argument("--data-dir", type=Path, default=settings.data_dir)
    return parser.parse_args(argv)


def _told(report: PollReport) -> str:
    refused = ", ".join(f"{reason} {n}" for reason, n in sorted(report.refused.items()))
    return (
        f"took {report.files} files: {report.published} declarations published, "
        f"{report.states_of_parties} states of the parties{_checked(report)}, "
        f"{report.refused.total()} refused{f' ({refused})' if refused else ''}"
    )


def _checked(report: PollReport) -> str:
    """How the poll's latest state of the parties compared with our tallies."""
    if not report.checked:
        return ""
    told = ", ".join(f"{outcome.replace('_', ' ')} {n}" for outcome, n in report.checked.items())
    return f" (against ours: {told})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    if args.watch is not None and not args.watch.is_dir():
        print(f"election-ingest: no folder {args.watch}", file=sys.stderr)
        return 1
    try:
        register = load_register(args.data_dir)
        mapping = load_feed_mapping(args.data_dir, args.feed, register)
        output = kafka_feed_output(settings)
    except (ReferenceDataError, ConnectionSettingsError, KafkaError) as error:
        print(f"election-ingest: {error}", file=sys.stderr)
        return 1
    ftp = FtpFolder(args.ftp) if args.ftp is not None else None
    folder: FeedFolder = ftp or DropFolder(args.watch)
    where = args.ftp.public if args.ftp is not None else str(args.watch)
    try:
        progress = IngestProgress(
            sync_redis_from_settings(settings),
            settings.redis_key_prefix,
            register.election_id,
            mapping.source,
        )
        tallies = BlockingTallyReader(
            lambda: redis_from_settings(settings), settings.redis_key_prefix, register
        )
        totals_check = TotalsCheck(tallies, output, mapping, settings.topic_declarations)
        ingest = PaFolderIngest(
            folder, progress, output, mapping, register, totals_check=totals_check
        )
        log.info("watching %s for PA feed %s", where, args.feed)
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
        if ftp is not None:
            ftp.close()
        output.close()


if __name__ == "__main__":
    sys.exit(main())
