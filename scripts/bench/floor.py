"""Floor benchmark: what producing and consuming cost per message before our code runs at all.

    python -m scripts.bench.floor [--messages 100000] [--partitions 4] [--timeout 300]
                                  [--bootstrap-servers HOST:PORT] [--write docs/benchmarks.md]

Three measurements on one fresh topic, which is deleted at the end:

1. Feed producer: kafka-python's KafkaProducer as the feed and the throughput bench configure it
   (acks=all, idempotent, linger 5 ms, batch 256 KiB) sends `--messages` declarations of the
   synthetic election (scripts/bench/feed.py, 6 candidates) as fast as it takes them; wall and
   CPU time (this process, the producer's sender thread included) from the first send to the
   end of the flush.
2. Faust's floor: a Faust worker in a subprocess (this module, `--faust-worker MODE`) whose one
   agent takes `stream.take_events(1000, within=0.005)` and does nothing per event (`noop`), or
   only `orjson.loads` on each value (`loads`). Timed inside the worker from the end of its
   first batch to the batch that completes `--messages`.
3. aiokafka's own floor: an AIOKafkaConsumer without a group, every partition assigned, reading
   the same messages with getmany(timeout_ms=100, max_records=5000) and doing nothing per
   record, in this process; timed from the end of the first non-empty getmany.

The consumers' first batch is left out of their figures (its messages are not counted), so
group joins, rebalances and fetch start-up do not count as throughput. Kafka runs on the same
machine and takes CPU too: each figure is one component's ceiling here, never a sum of them.
Speed is measured here and written down, never asserted by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from scripts.bench.feed import declaration_bytes, seat_specs
from scripts.bench.report import load_average, machine, progress, publish, timer
from scripts.worker_process import PROJECT_ROOT
from streams.settings import get_settings

FAUST_MODES = {
    "noop": "nothing per event",
    "loads": "orjson.loads per event",
}
TAKE = 1000
TAKE_WITHIN_S = 0.005
GETMANY_RECORDS = 5000
# Fewer messages than this would time little more than the first batch, which is left out.
MIN_MESSAGES = 10_000
# Keys cycle over this many seats, as a night's keys (ONS ids) do, so partitions fill evenly.
KEY_SEATS = 10_000


@dataclass(frozen=True)
class Floor:
    """One component's measurement: `messages` handled in `wall_s`, costing `cpu_s`."""

    name: str
    messages: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float | None:
        return self.messages / self.wall_s if self.messages and self.wall_s > 0 else None

    @property
    def cpu_us(self) -> float | None:
        return self.cpu_s / self.messages * 1e6 if self.messages else None

    @property
    def cores(self) -> float | None:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else None


def _clocks() -> tuple[float, float]:
    return time.monotonic(), time.process_time()


def declaration_value() -> bytes:
    """A realistic declaration, the size the synthetic election sends (about 1.3 KB)."""
    return declaration_bytes(seat_specs(1, 6)[0], 1)


def crc32c_status() -> str:
    """Whether kafka-python checksums record batches with the C extension or in pure Python."""
    try:
        import crc32c
    except ImportError:
        return "`crc32c` C extension not importable: kafka-python computes CRC32C in pure Python"
    from kafka.record import util

    # kafka-python binds the extension at import as `crc32c_c`, None when it was missing.
    used = getattr(util, "crc32c_c", None) is crc32c.crc32c
    return (
        f"`crc32c` C extension importable ({importlib.metadata.version('crc32c')}); "
        f"kafka-python uses it for CRC32C: {'yes' if used else 'no'}"
    )


def versions() -> str:
    names = ("faust-streaming", "aiokafka", "kafka-python", "orjson")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """The topic with the copies a worker's would have (ELECTION_TOPIC_REPLICATION_FACTOR)."""
    settings = get_settings()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    partitions,
                    settings.topic_replication_factor,
                    topic_configs=settings.topic_config(),
                )
            ]
        )
    finally:
        admin.close()


def cleanup(bootstrap: str, topics: Sequence[str], groups: Sequence[str]) -> None:
    """Best effort: a failed deletion leaves a stray topic, which must not hide the results."""
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            with contextlib.suppress(Exception):
                admin.delete_topics(list(topics))
            # kafka-python 3 calls it delete_groups; 2.x, which pyproject still allows,
            # delete_consumer_groups.
            delete_groups = getattr(admin, "delete_groups", None) or getattr(
                admin, "delete_consumer_groups", None
            )
            if delete_groups is not None:
                with contextlib.suppress(Exception):
                    delete_groups(list(groups))
        finally:
            admin.close()


def produce(bootstrap: str, topic: str, value: bytes, messages: int, timeout: float) -> Floor:
    """The feed's producer at full speed: every send acknowledged by the end of the flush."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    keys = [f"E99{i % KEY_SEATS:06d}".encode() for i in range(messages)]
    try:
        # Metadata and the idempotent producer id are fetched once, before the clock starts.
        producer.partitions_for(topic)
        began, cpu_began = _clocks()
        futures = [producer.send(topic, key=key, value=value) for key in keys]
        producer.flush(timeout)
        ended, cpu_ended = _clocks()
    finally:
        producer.close(timeout=10)
    failed = [future for future in futures if not future.succeeded()]
    if failed:
        raise RuntimeError(
            f"{len(failed):,} of {messages:,} sends failed or were not acknowledged within "
            f"--timeout {timeout:g} s; first: {failed[0].exception!r}"
        )
    return Floor(
        "kafka-python KafkaProducer (acks=all, idempotent, linger 5 ms, batch 256 KiB)",
        messages,
        ended - began,
        cpu_ended - cpu_began,
    )


def run_faust_worker(args: argparse.Namespace) -> None:
    """The subprocess side: a one-agent Faust app that writes its timings to --result-file."""
    mode: str = args.faust_worker
    result_file: Path = args.result_file
    # Faust makes only the last folder of its datadir, not the parents.
    args.datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        args.app_id,
        broker=["kafka://" + server for server in args.bootstrap_servers.split(",")],
        store="memory://",
        datadir=str(args.datadir / "{conf.name}-data"),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=args.partitions,
        topic_replication_factor=get_settings().topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        # As the pipeline's app: commits on a timer, never inline in the fetch loop, and
        # fetches of ELECTION_CONSUMER_MAX_FETCH_BYTES (--fetch-bytes) a partition.
        broker_commit_every=1_000_000,
        broker_commit_interval=1.0,
        consumer_max_fetch_size=args.fetch_bytes,
        web_enabled=False,
        autodiscover=False,
    )
    topic = app.topic(args.topic)
    wanted: int = args.messages
    decode = mode == "loads"

    @app.agent(topic)
    async def floor(stream: faust.StreamT[bytes]) -> None:
        seen = 0
        first = 0
        began: tuple[float, float] | None = None
        # take_events is Stream's, missing from the StreamT interface that agents are typed with.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            TAKE, within=TAKE_WITHIN_S
        ):
            if decode:
                for event in events:
                    orjson.loads(event.value)
            seen += len(events)
            if began is None:
                # The clocks start once the first batch is handled, so start-up is not timed.
                began, first = _clocks(), seen
                continue
            if seen >= wanted and not result_file.exists():
                ended = _clocks()
                result = {
                    "messages": seen - first,
                    "wall_s": ended[0] - began[0],
                    "cpu_s": ended[1] - began[1],
                }
                # Written whole, then renamed: the parent never reads half a file.
                partial = result_file.with_suffix(".partial")
                partial.write_bytes(orjson.dumps(result))
                os.replace(partial, result_file)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_faust(args: argparse.Namespace, topic: str, mode: str, folder: Path, app_id: str) -> Floor:
    """Start a Faust worker subprocess, wait for its result file, then stop it with SIGTERM."""
    result_file = folder / f"{app_id}.json"
    log_path = folder / f"{app_id}.log"
    command = [
        sys.executable,
        "-m",
        "scripts.bench.floor",
        "--faust-worker",
        mode,
        "--topic",
        topic,
        "--messages",
        str(args.messages),
        "--partitions",
        str(args.partitions),
        "--fetch-bytes",
        str(args.fetch_bytes),
        "--bootstrap-servers",
        args.bootstrap_servers,
        "--app-id",
        app_id,
        "--datadir",
        str(folder / "faust"),
        "--result-file",
        str(result_file),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C aimed at the benchmark does not also hit the worker.
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + args.timeout
        while not result_file.exists():
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Faust worker ({mode}) exited with {process.returncode} before "
                    f"consuming {args.messages:,} messages; the end of its log:\n"
                    f"{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Faust worker ({mode}) had not consumed {args.messages:,} messages "
                    f"after --timeout {args.timeout:g} s; the end of its log:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
        result = orjson.loads(result_file.read_bytes())
    finally:
        _stop(process)
    return Floor(
        f"Faust agent, take_events({TAKE}, within={TAKE_WITHIN_S:g}), "
        f"fetch {args.fetch_bytes // 1024:,} KiB a partition, {FAUST_MODES[mode]}",
        int(result["messages"]),
        float(result["wall_s"]),
        float(result["cpu_s"]),
    )


async def consume_aiokafka(
    bootstrap: str, topic: str, partitions: int, messages: int, timeout: float
) -> Floor:
    """aiokafka alone: no group, every partition from the start, nothing done per record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(partitions)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        seen = 0
        first = 0
        began: tuple[float, float] | None = None
        while seen < messages:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"aiokafka's consumer had read {seen:,} of {messages:,} messages after "
                    f"--timeout {timeout:g} s"
                )
            batches = await consumer.getmany(timeout_ms=100, max_records=GETMANY_RECORDS)
            got = sum(len(records) for records in batches.values())
            if not got:
                continue
            seen += got
            if began is None:
                began, first = _clocks(), seen
        ended = _clocks()
    finally:
        await consumer.stop()
    assert began is not None
    return Floor(
        f"aiokafka AIOKafkaConsumer, getmany(max_records={GETMANY_RECORDS}), nothing per record",
        seen - first,
        ended[0] - began[0],
        ended[1] - began[1],
    )


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(
    floors: Sequence[Floor], value_bytes: int, partitions: int, crc32c: str, versions: str
) -> str:
    """The results as Markdown: one row per floor, then the libraries they measured."""
    lines = [
        f"Messages: declarations of {value_bytes:,} bytes on one topic of {partitions} "
        "partitions. Consumers are timed after their first batch, whose messages are not "
        "counted.",
        "",
        "| floor | messages timed | wall, s | CPU, s | CPU/wall, cores | messages/s "
        "| CPU per message, µs |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {floor.name} | {floor.messages:,} | {floor.wall_s:.2f} | {floor.cpu_s:.2f} | "
        f"{_number(floor.cores, 2)} | {_number(floor.rate)} | {_number(floor.cpu_us, 1)} |"
        for floor in floors
    ]
    lines += ["", f"{crc32c}.", "", f"Libraries: {versions}."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages to produce")
    parser.add_argument("--partitions", type=int, default=settings.topic_partitions)
    parser.add_argument(
        "--fetch-bytes",
        type=int,
        default=settings.consumer_max_fetch_bytes,
        help="Faust's fetch size a partition (Faust's own default is 1048576)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait per phase, s")
    parser.add_argument("--bootstrap-servers", default=settings.kafka_bootstrap_servers)
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    # The Faust worker is this module run again: these are for that subprocess only.
    parser.add_argument("--faust-worker", choices=sorted(FAUST_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--app-id", help=argparse.SUPPRESS)
    parser.add_argument("--datadir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < MIN_MESSAGES:
        parser.error(f"--messages must be at least {MIN_MESSAGES:,}")
    if args.partitions < 1 or args.timeout <= 0:
        parser.error("--partitions and --timeout must be positive")
    worker_args = (args.topic, args.app_id, args.datadir, args.result_file)
    if args.faust_worker and None in worker_args:
        parser.error("--faust-worker needs --topic, --app-id, --datadir and --result-file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.faust_worker:
        run_faust_worker(args)
        return 0
    command = "python -m scripts.bench.floor " + shlex.join(sys.argv[1:] if argv is None else argv)
    load_before = load_average()
    started = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench-floor-{run_id}"
    app_ids = [f"bench-floor-{mode}-{run_id}" for mode in FAUST_MODES]
    value = declaration_value()
    floors: list[Floor] = []
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, timer() as elapsed:
        create_topic(args.bootstrap_servers, topic, args.partitions)
        try:
            progress(f"producing {args.messages:,} messages to {topic}")
            floors.append(
                produce(args.bootstrap_servers, topic, value, args.messages, args.timeout)
            )
            for mode, app_id in zip(FAUST_MODES, app_ids, strict=True):
                progress(f"Faust worker ({mode}) consuming them")
                floors.append(run_faust(args, topic, mode, Path(tmp), app_id))
            progress("aiokafka's consumer reading them")
            floors.append(
                asyncio.run(
                    consume_aiokafka(
                        args.bootstrap_servers,
                        topic,
                        args.partitions,
                        args.messages,
                        args.timeout,
                    )
                )
            )
        finally:
            # Faust declares a leader topic per app id besides joining a consumer group.
            leaders = [f"{app_id}-__assignor-__leader" for app_id in app_ids]
            cleanup(args.bootstrap_servers, [topic, *leaders], app_ids)
        took = elapsed()
    text = "\n".join(
        [
            f"## Floor {started:%Y-%m-%d %H:%M} UTC",
            "",
            f"`{command}` ({took:.0f} s); {machine('Kafka', load_before)}.",
            "",
            report(floors, len(value), args.partitions, crc32c_status(), versions()),
            "",
        ]
    )
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
