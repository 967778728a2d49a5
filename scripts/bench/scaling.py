"""The 2024 night at full speed through 1, 2, 3 ... real worker processes, timed (docs/scaling.md).

    python -m scripts.bench.scaling --workers 1 2 3 [--rounds 2] [--on single cluster]

Each run gets its own topics, Redis key prefix and consumer group: N workers start, the
script waits until the group is stable with N members, then sends the 651 messages of the
night as fast as Kafka acknowledges and times, from the first send and from the last
message's acknowledgement, until all 650 seats are tallied and until every output is
published. `--on` names the set-ups: `single`, the one broker and Redis of the settings
(`election-services start`), and `cluster`, the local cluster (`election-services start
--cluster`: three brokers, topics with three copies and two in sync, Redis through Sentinel).
Runs alternate between set-ups and worker counts, so load from elsewhere on the machine
spreads over all of them. It prints one Markdown row per run and the median per set-up and
worker count; it measures, it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from scripts.replay import build_outgoing, kafka_sender, replay
from scripts.services import CLUSTER_MIN_ISR, CLUSTER_REPLICATION, cluster_urls
from scripts.worker_process import WorkerProcess
from streams.connections import kafka_client_options, redis_from_settings
from streams.rules.reference import load_register
from streams.settings import Settings, get_settings
from streams.store.keys import CHANGES, OUTBOX, SEAT
from streams.store.outbox import Outbox
from streams.store.tally_store import TallyStore

POLL_S = 0.1
SETUPS = ("single", "cluster")
KINDS = ("seats", "change log", "outbox", "other")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class RunResult:
    setup: str
    workers: int
    round: int
    sent_s: float  # first send -> the last message acknowledged by Kafka
    tallied_s: float  # first send -> all seats tallied
    published_s: float  # first send -> every output on Kafka
    messages: int
    worker_cpu_s: float  # CPU time of all workers and their publishers during the timed part
    machine_busy: float  # share of all cores busy (anyone's work) during the timed part
    peak_rss_mib: list[float]  # per worker, over its whole life
    redis_cpu_s: float  # CPU time of the Redis primary during the timed part (anyone's work)
    redis_bytes: Counter[str]  # what the run's keys take in Redis at the end, by key_kind

    @property
    def last_to_tallied_s(self) -> float:
        """The last message acknowledged by Kafka -> all seats tallied."""
        return self.tallied_s - self.sent_s

    @property
    def last_to_published_s(self) -> float:
        """The last message acknowledged by Kafka -> every output on Kafka."""
        return self.published_s - self.sent_s


def on(settings: Settings, setup: str) -> Settings:
    """The settings of a set-up: as given for `single`; the local cluster's addresses, copies
    and in-sync copies for `cluster`."""
    if setup == "single":
        return settings
    found = cluster_urls(settings)
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": found.kafka_bootstrap_servers,
            "redis_url": found.redis_url,
            "topic_replication_factor": CLUSTER_REPLICATION,
            "min_insync_replicas": CLUSTER_MIN_ISR,
        }
    )


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _pid(worker: WorkerProcess) -> int:
    assert worker.process is not None
    return worker.process.pid


def _topics(run_id: str, settings: Settings) -> dict[str, tuple[str, int]]:
    """Settings field suffix -> (fresh topic name, partitions), as the app declares them."""
    many = settings.topic_partitions
    return {
        "declarations": (f"{run_id}-declarations", many),
        "dead_letter": (f"{run_id}-dead-letter", 1),
        "results": (f"{run_id}-results", many),
        "state": (f"{run_id}-state", 1),
        "alerts": (f"{run_id}-alerts", 1),
        "newsroom": (f"{run_id}-newsroom", 1),
        "audit": (f"{run_id}-audit", 1),
    }


def worker_env(
    settings: Settings, run_id: str, topics: dict[str, tuple[str, int]]
) -> dict[str, str]:
    """The settings a run's workers get: its own topics, key prefix and consumer group."""
    return {
        "ELECTION_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ELECTION_REDIS_URL": settings.redis_url,
        "ELECTION_REDIS_KEY_PREFIX": f"{run_id}:",
        "ELECTION_APP_ID": run_id,
        "ELECTION_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "ELECTION_TOPIC_REPLICATION_FACTOR": str(settings.topic_replication_factor),
        "ELECTION_MIN_INSYNC_REPLICAS": str(settings.min_insync_replicas),
        **{f"ELECTION_TOPIC_{field.upper()}": name for field, (name, _) in topics.items()},
    }


@contextlib.contextmanager
def fresh_topics(
    settings: Settings, topics: dict[str, tuple[str, int]], app_id: str
) -> Iterator[None]:
    # Faust adds its partition assignor's topic; it goes with the others.
    made = [name for name, _ in topics.values()] + [f"{app_id}-__assignor-__leader"]
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_options(settings)
    )
    try:
        copies, config = settings.topic_replication_factor, settings.topic_config()
        admin.create_topics(
            [NewTopic(name, n, copies, topic_configs=config) for name, n in topics.values()]
        )
        yield
    finally:
        with contextlib.suppress(Exception):  # best effort: the names are never reused
            admin.delete_topics(made)
        admin.close()


def wait_for_group(settings: Settings, group: str, members: int, timeout_s: float) -> None:
    """Until the consumer group is Stable with every worker in it, so no rebalance is timed."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_options(settings)
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            info = admin.describe_groups([group])[group]
            if info["group_state"] == "Stable" and len(info["members"]) == members:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"group {group}: {info['group_state']} with {len(info['members'])} of "
                    f"{members} members after {timeout_s:.0f}s"
                )
            time.sleep(0.5)
    finally:
        admin.close()


async def _progress(settings: Settings, prefix: str) -> tuple[int, int, int, int, int]:
    """(seats tallied, change sequence, changes announced, outputs queued, outputs published)"""
    redis = redis_from_settings(settings)
    try:
        store = TallyStore(redis, settings.election_id, prefix)
        # The sequence first, so the announced cursor read after it is at least as new.
        seats, sequence = await store.seats_tallied(), await store.sequence()
        outbox = await Outbox(redis, store.ns).progress()
    finally:
        await redis.aclose()
    return seats, sequence, outbox.announced, outbox.queued, outbox.published


async def _redis_cpu_s(settings: Settings) -> float:
    """CPU time the Redis primary has used since it started (anyone's commands)."""
    redis = redis_from_settings(settings)
    try:
        cpu = await redis.info("cpu")
    finally:
        await redis.aclose()
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def key_kind(name: str) -> str:
    """What a key of the election's namespace (the text after it) holds, for the memory split."""
    if name.startswith(SEAT):
        return "seats"
    if name == CHANGES:
        return "change log"
    if name.startswith(OUTBOX):
        return "outbox"
    return "other"


async def _finish(settings: Settings, prefix: str) -> tuple[int, dict[str, int], Counter[str]]:
    """Seats in the final state, the outcome counters and the bytes the run's keys take in
    Redis by kind (MEMORY USAGE of each); then the run's keys are removed."""
    redis = redis_from_settings(settings)
    store = TallyStore(redis, settings.election_id, prefix)
    held: Counter[str] = Counter()
    try:
        state = await store.state(load_register(settings.data_dir))
        counters = await store.counters()
        async for key in redis.scan_iter(match=f"{store.ns}*", count=1000):
            kind = key_kind(key.decode().removeprefix(store.ns))
            held[kind] += await redis.memory_usage(key, samples=0) or 0
        await store.reset()
    finally:
        await redis.aclose()
    return state.seats_declared, counters, held


def run_once(
    settings: Settings, setup: str, workers: int, round_no: int, timeout_s: float
) -> RunResult:
    run_id = f"scale-{uuid.uuid4().hex[:8]}"
    prefix = f"{run_id}:"
    topics = _topics(run_id, settings)
    feed = build_outgoing(settings.data_dir)
    seats = len(load_register(settings.data_dir).constituencies)
    env = worker_env(settings, run_id, topics)
    with contextlib.ExitStack() as stack:
        stack.enter_context(fresh_topics(settings, topics, run_id))
        procs = [
            stack.enter_context(WorkerProcess("streams.worker:app", env, name=f"{run_id}-{i}"))
            for i in range(1, workers + 1)
        ]
        for proc in procs:
            proc.wait_for_log("Ready", timeout=180)
        wait_for_group(settings, run_id, workers, timeout_s=120)

        # The workers and the publisher process each runs beside it: the publisher's work was
        # the workers' own until it moved out.
        pids = [pid for p in procs for pid in (_pid(p), *p.publishers())]
        cpu_before = sum(_proc_cpu_s(pid) for pid in pids)
        redis_cpu_before = asyncio.run(_redis_cpu_s(settings))
        busy_before, total_before = _machine_jiffies()
        declarations_topic, partitions = topics["declarations"]
        with kafka_sender(
            settings.kafka_bootstrap_servers,
            declarations_topic,
            partitions,
            kafka_client_options(settings),
        ) as send:
            began = time.monotonic()
            report = replay(feed, send, speed=None)
        # Leaving kafka_sender flushed: every message is acknowledged by now.
        acked_s = time.monotonic() - began
        tallied_at: float | None = None
        while True:
            tallied, sequence, announced, queued, published = asyncio.run(
                _progress(settings, prefix)
            )
            now = time.monotonic()
            if tallied_at is None and tallied >= seats:
                tallied_at = now
            if tallied_at is not None and announced >= sequence and published >= queued > 0:
                published_at = now
                break
            if now - began > timeout_s:
                raise RuntimeError(
                    f"{workers} worker(s): after {timeout_s:.0f}s {tallied}/{seats} seats, "
                    f"published {published}/{queued}; logs: {[str(p.log_path) for p in procs]}"
                )
            for proc in procs:
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError(f"a worker exited:\n{proc.tail()}")
            time.sleep(POLL_S)
        cpu_after = sum(_proc_cpu_s(pid) for pid in pids)
        redis_cpu_after = asyncio.run(_redis_cpu_s(settings))
        busy_after, total_after = _machine_jiffies()
        peaks = [_peak_rss_mib(_pid(p)) for p in procs]
    final_seats, counters, redis_bytes = asyncio.run(_finish(settings, prefix))
    if final_seats != seats or counters.get("validation:accepted") != report.total:
        raise RuntimeError(f"wrong end state: {final_seats} seats, counters {counters}")
    return RunResult(
        setup=setup,
        workers=workers,
        round=round_no,
        sent_s=acked_s,
        tallied_s=tallied_at - began,
        published_s=published_at - began,
        messages=report.total,
        worker_cpu_s=cpu_after - cpu_before,
        machine_busy=(busy_after - busy_before) / max(1, total_after - total_before),
        peak_rss_mib=peaks,
        redis_cpu_s=redis_cpu_after - redis_cpu_before,
        redis_bytes=redis_bytes,
    )


def row(result: RunResult) -> str:
    rss = ", ".join(f"{mib:.0f}" for mib in result.peak_rss_mib)
    return (
        f"| {result.setup} | {result.workers} | {result.round} | {result.sent_s:.1f} | "
        f"{result.tallied_s:.1f} | {result.published_s:.1f} | "
        f"{result.last_to_tallied_s:.1f} | {result.last_to_published_s:.1f} | "
        f"{result.messages / result.tallied_s:.0f} | "
        f"{result.worker_cpu_s:.1f} | {result.redis_cpu_s:.2f} | {result.machine_busy:.0%} | "
        f"{rss} | {' / '.join(f'{result.redis_bytes[kind] / 2**20:.2f}' for kind in KINDS)} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.scaling", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument(
        "--on",
        nargs="+",
        choices=SETUPS,
        default=["single"],
        help="set-ups to run on: the single node (election-services start) and/or the local "
        "cluster (election-services start --cluster)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    setups = {setup: on(settings, setup) for setup in args.on}
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"ELECTION_TOPIC_PARTITIONS={settings.topic_partitions}, "
        f"ELECTION_BATCH_SIZE={settings.batch_size}"
    )
    for setup, chosen in setups.items():
        print(
            f"{setup}: Kafka {chosen.kafka_bootstrap_servers}, "
            f"Redis {chosen.redis_url.split('@')[-1]}, "
            f"{chosen.topic_replication_factor} copies of each topic, "
            f"{chosen.min_insync_replicas} in sync for a write"
        )
    print()
    print(
        "| set-up | workers | round | all sent (s) | all seats tallied (s) "
        "| all outputs published (s) | last message to tallied (s) "
        "| last message to published (s) | messages/s to tallied | worker CPU (s) "
        "| Redis CPU (s) | machine CPU busy | peak RSS per worker (MiB) "
        f"| the night in Redis (MiB: {' / '.join(KINDS)}) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    results: list[RunResult] = []
    for round_no in range(1, args.rounds + 1):
        for workers in args.workers:
            for setup, chosen in setups.items():
                result = run_once(chosen, setup, workers, round_no, args.timeout)
                results.append(result)
                print(row(result), flush=True)
    print()
    print(
        "| set-up | workers | median messages/s to tallied | median last message to tallied (s) "
        "| median last message to published (s) | runs |"
    )
    print("|---|---|---|---|---|---|")
    for setup in setups:
        for workers in args.workers:
            mine = [r for r in results if r.workers == workers and r.setup == setup]
            print(
                f"| {setup} | {workers} | "
                f"{statistics.median(r.messages / r.tallied_s for r in mine):.0f} | "
                f"{statistics.median(r.last_to_tallied_s for r in mine):.1f} | "
                f"{statistics.median(r.last_to_published_s for r in mine):.1f} | {len(mine)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
