"""Fan-out benchmark: many event-stream clients on one worker through the 2024 night at full speed.

    python -m scripts.bench.fanout [--clients 2000] [--http-seconds 10] [--concurrency 50]
                                   [--settle 30] [--write docs/benchmarks.md]

One fresh worker on topics, a Redis prefix and a consumer group of its own (as
`python -m scripts.bench` makes them). `--clients` clients open `/api/events?after=0` (aiohttp,
one process, one event loop; with `rehearsal=1`, as the replay is a rehearsal and every entry
is wanted) before the night is replayed at full speed, and read until the
last outbox entry. A client whose stream ends early reconnects with its Last-Event-ID, as a
browser does, and is counted as dropped. Measured:

- every client's events against the outbox entries `/api/events` streams (the newsroom's,
  for the desk alone, are not): in order, none missing, none twice;
- fan-out latency of each event at each client: the time the client read it, less the time a
  reference reader (a thread of this process polling the published cursor every
  millisecond) first saw its sequence published, i.e. on Kafka and free to be streamed;
- the worker's resident memory (VmRSS): before the clients connect, the most sampled every
  100 ms while they are connected, and `--settle` seconds after they disconnect (a stream's
  handler learns its client left at its next write: a heartbeat, at most 15 s later);
- then `/api/seats` and `/api/state`, each for `--http-seconds` at `--concurrency` requests
  in flight (full bodies, no If-None-Match): requests per second, p50 and p99.

The load client shares the machine with the worker, Kafka and Redis, and its own time to read
2,000 sockets is part of the latency measured.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import re
import resource
import shlex
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis

from scripts.bench.report import (
    add_run_arguments,
    load_average,
    machine,
    progress,
    publish,
    timer,
    worker_env,
)
from scripts.bench.throughput import NIGHT_ELECTION_ID, NIGHT_SEATS, Isolated, outputs_done
from scripts.replay import build_outgoing, kafka_sender, replay
from streams.settings import get_settings
from streams.store.keys import OUTBOX, PUBLISHED, TOTALS
from streams.web.live_feed import EVENT_NAMES

_ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)
FANOUT_P99_TARGET_MS = 100.0
MEMORY_TARGET_MIB = 300.0
HTTP_TARGET_PER_S = 1000.0


def vm_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return kib / 1024


def raise_open_file_limit(needed: int) -> int:
    """Soft limit up to `needed` (at most the hard one); the worker, started after, inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


class Reference(threading.Thread):
    """Polls the published cursor every millisecond: when each sequence became streamable;
    and samples the worker's memory every 100 ms."""

    def __init__(self, run: Isolated, pid: int) -> None:
        super().__init__(daemon=True, name="reference")
        self.run_ = run
        self.pid = pid
        self.published_at: dict[int, float] = {}
        self.peak_rss_mib = 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        client = redis.Redis.from_url(self.run_.redis_url)
        seen = 0
        next_sample = 0.0
        try:
            while not self.halt.is_set():
                published = int(client.get(self.run_.key(PUBLISHED)) or 0)
                now = time.time()
                for sequence in range(seen + 1, published + 1):
                    self.published_at[sequence] = now
                seen = max(seen, published)
                if now >= next_sample:
                    self.peak_rss_mib = max(self.peak_rss_mib, vm_rss_mib(self.pid))
                    next_sample = now + 0.1
                time.sleep(0.001)
        finally:
            client.close()


@dataclass
class Client:
    """One event-stream client: what it read, when, and how often its stream broke."""

    sequences: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    received_bytes: int = 0
    drops: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> int:
        return self.sequences[-1] if self.sequences else 0


async def follow(session: aiohttp.ClientSession, url: str, client: Client, until: Any) -> None:
    """Read `url`'s events until `until()` says stop; reconnect from the last id on a break."""
    while not until(client):
        try:
            headers = {"Last-Event-ID": str(client.last)} if client.last else {}
            async with session.get(url, headers=headers) as response:
                response.raise_for_status()
                client.connected.set()
                buffer = b""
                async for chunk in response.content.iter_any():
                    now = time.time()
                    client.received_bytes += len(chunk)
                    buffer += chunk
                    cut = buffer.rfind(b"\n\n")
                    if cut < 0:
                        continue
                    complete, buffer = buffer[: cut + 2], buffer[cut + 2 :]
                    for match in _ID.finditer(complete):
                        client.sequences.append(int(match.group(1)))
                        client.times.append(now)
                    if until(client):
                        return
        except (aiohttp.ClientError, TimeoutError):
            pass
        if not until(client):
            client.drops += 1
            await asyncio.sleep(1.0)  # the retry the server asks for


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


@dataclass
class StreamResult:
    clients: int
    connected: int
    events: int
    received_bytes: int
    delivery_s: float  # from the night's first published entry to the last client done
    closed_by_worker: int
    worker_cpu_s: float  # from the clients connecting to the last client done
    publisher_cpu_s: float  # the worker's publisher process, the same span
    client_cpu_s: float  # this process (clients and reference reader), the same span
    outbox_entries: int
    complete_in_order: int
    missing: int
    duplicates: int
    out_of_order: int
    drops: int
    latency_ms: list[float]
    replay_s: float
    rss_before: float
    rss_peak: float
    rss_after: float
    settle_s: float


@dataclass
class HttpResult:
    path: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    json_bytes: int
    wire_bytes: int


async def run_streams(args: argparse.Namespace, run: Isolated) -> StreamResult:
    worker = run.workers[0]
    assert worker.process is not None
    pid = worker.process.pid
    rss_before = vm_rss_mib(pid)
    worker_cpu_before = run.cpu_seconds()
    publisher_cpu_before = run.cpu_seconds(publishers=True)
    own_cpu_before = _own_cpu_seconds()
    reference = Reference(run, pid)
    reference.start()
    url = worker.base_url + "/api/events?after=0&rehearsal=1"
    clients = [Client() for _ in range(args.clients)]
    state = {"last": -1}  # the outbox's last sequence, once the night is over

    def done(client: Client) -> bool:
        return state["last"] >= 0 and client.last >= state["last"]

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        progress(f"connecting {args.clients} event-stream clients")
        tasks = [asyncio.create_task(follow(session, url, c, done)) for c in clients]
        waiting = asyncio.gather(*(c.connected.wait() for c in clients))
        try:
            await asyncio.wait_for(waiting, timeout=args.timeout)
        except TimeoutError:
            progress("not every client connected in time")
        connected = sum(c.connected.is_set() for c in clients)
        progress(f"{connected} connected; the 2024 night at --speed max")
        feed = build_outgoing(get_settings().data_dir)

        def send_night() -> float:
            began = time.time()
            with kafka_sender(run.bootstrap, run.topics["declarations"], run.partitions) as send:
                replay(feed, send, None)
            return time.time() - began

        replay_s = await asyncio.to_thread(send_night)
        plain = redis.Redis.from_url(run.redis_url)
        try:
            deadline = time.monotonic() + args.timeout
            while True:
                declared = plain.hget(run.key(TOTALS), "total:declared")
                if int(declared or 0) >= NIGHT_SEATS and outputs_done(run):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the night did not finish in {args.timeout}s")
                await asyncio.sleep(0.05)
            entries: Any = plain.xrange(run.key(OUTBOX))
            # What /api/events streams: the newsroom's entries are for the desk alone.
            expected = [
                int(entry_id.decode().split("-", 1)[0])
                for entry_id, fields in entries
                if fields[b"topic"].decode() in EVENT_NAMES
            ]
        finally:
            plain.close()
        state["last"] = expected[-1]
        progress(f"night over: {len(expected)} outbox entries; waiting for every client")
        _, pending = await asyncio.wait(tasks, timeout=args.timeout)
        for task in pending:
            task.cancel()
        worker_cpu = run.cpu_seconds() - worker_cpu_before
        publisher_cpu = run.cpu_seconds(publishers=True) - publisher_cpu_before
        own_cpu = _own_cpu_seconds() - own_cpu_before
        last_read = max((c.times[-1] for c in clients if c.times), default=time.time())
        delivery_s = last_read - min(reference.published_at.values(), default=last_read)
        rss_peak = max(reference.peak_rss_mib, vm_rss_mib(pid))
        reference.halt.set()
        reference.join()
    # Every client has hung up (the session is closed): let the worker let go.
    await asyncio.sleep(args.settle)
    rss_after = vm_rss_mib(pid)

    complete = missing = duplicates = out_of_order = 0
    latency: list[float] = []
    expected_set = set(expected)
    for client in clients:
        got = list(client.sequences)
        # Entries queued after the night's last (a moment told late) may follow; not counted.
        complete += got[: len(expected)] == expected
        missing += len(expected_set - set(got))
        duplicates += len(got) - len(set(got))
        out_of_order += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        for sequence, at in zip(got, client.times, strict=True):
            published = reference.published_at.get(sequence)
            if published is not None:
                latency.append((at - published) * 1000)
    return StreamResult(
        clients=args.clients,
        connected=connected,
        events=sum(len(c.sequences) for c in clients),
        received_bytes=sum(c.received_bytes for c in clients),
        delivery_s=delivery_s,
        closed_by_worker=worker.log().count("event stream: closed the client"),
        worker_cpu_s=worker_cpu,
        publisher_cpu_s=publisher_cpu,
        client_cpu_s=own_cpu,
        outbox_entries=len(expected),
        complete_in_order=complete,
        missing=missing,
        duplicates=duplicates,
        out_of_order=out_of_order,
        drops=sum(c.drops for c in clients),
        latency_ms=latency,
        replay_s=replay_s,
        rss_before=rss_before,
        rss_peak=rss_peak,
        rss_after=rss_after,
        settle_s=args.settle,
    )


async def load(base_url: str, path: str, seconds: float, concurrency: int) -> HttpResult:
    """`concurrency` requests in flight for `seconds`: each loop sends its next on an answer."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    # As a browser asks; the bodies are not inflated here, so what is timed is the worker.
    gzip = {"Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        async with session.get(base_url + path, headers={"Accept-Encoding": "identity"}) as plain:
            json_bytes = len(await plain.read())
        async with session.get(base_url + path, headers=gzip) as warm:
            wire_bytes = len(await warm.read())
        end = time.monotonic() + seconds

        async def one_loop() -> None:
            nonlocal errors
            while time.monotonic() < end:
                began = time.perf_counter()
                try:
                    async with session.get(base_url + path, headers=gzip) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - began) * 1000)
                else:
                    errors += 1

        began = time.monotonic()
        await asyncio.gather(*(one_loop() for _ in range(concurrency)))
        took = time.monotonic() - began
    return HttpResult(
        path,
        len(latencies),
        errors,
        took,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        json_bytes,
        wire_bytes,
    )


def report(stream: StreamResult, http: list[HttpResult], fd_limit: int) -> str:
    lat = stream.latency_ms
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    worst = max(lat) if lat else float("nan")
    lines = [
        f"{stream.clients:,} clients on `/api/events?after=0` (open-file limit {fd_limit:,}); "
        f"the 2024 night replayed in {stream.replay_s:.2f} s, {stream.outbox_entries:,} "
        "outbox entries to stream.",
        "",
        "| event streams | |",
        "|---|---|",
        f"| clients connected before the night | {stream.connected:,} of {stream.clients:,} |",
        f"| clients with every event, in order, once | {stream.complete_in_order:,} |",
        f"| events received (all clients) | {stream.events:,} |",
        f"| missing / duplicated / out of order (all clients) | {stream.missing:,} / "
        f"{stream.duplicates:,} / {stream.out_of_order:,} |",
        f"| bytes received (all clients) | {stream.received_bytes / 1e6:,.0f} MB |",
        f"| first entry published to the last client's last read | {stream.delivery_s:.2f} s "
        f"({stream.received_bytes / 1e6 / max(stream.delivery_s, 1e-9):,.0f} MB/s) |",
        "| CPU from the clients connecting to the last one done: worker / its publisher "
        f"process / load client | {stream.worker_cpu_s:.1f} s / {stream.publisher_cpu_s:.1f} s "
        f"/ {stream.client_cpu_s:.1f} s |",
        f"| streams dropped (then resumed with Last-Event-ID) | {stream.drops:,} |",
        f"| of which closed by the worker as too slow (its log) | {stream.closed_by_worker:,} |",
        "",
        "| fan-out latency, ms (client read time - reference saw it published) "
        "| events | p50 | p99 | max |",
        "|---|---|---|---|---|",
        f"| all clients, all events | {len(lat):,} | {p50:,.1f} | {p99:,.1f} | {worst:,.1f} |",
        "",
        "| worker memory (VmRSS), MiB | |",
        "|---|---|",
        f"| before the clients | {stream.rss_before:.0f} |",
        f"| peak while connected (sampled every 100 ms) | {stream.rss_peak:.0f} |",
        f"| {stream.settle_s:g} s after they disconnected | {stream.rss_after:.0f} |",
        "",
        "| HTTP, concurrency 50, full bodies, gzip | JSON, bytes | sent, bytes | requests "
        "| errors | requests/s | p50, ms | p99, ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in http:
        lines.append(
            f"| `{result.path}` | {result.json_bytes:,} | {result.wire_bytes:,} | "
            f"{result.requests:,} | {result.errors} | "
            f"{result.requests / result.seconds:,.0f} | {result.p50_ms:.1f} | "
            f"{result.p99_ms:.1f} |"
        )
    everyone = stream.complete_in_order == stream.clients
    # Back down: it kept less than half of what the clients added.
    released = stream.rss_after - stream.rss_before < (stream.rss_peak - stream.rss_before) / 2
    lines += [
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| {stream.clients:,} clients each receive every event in order | "
        f"{stream.complete_in_order:,} of {stream.clients:,} | {_met(everyone)} |",
        f"| fan-out p99 < {FANOUT_P99_TARGET_MS:g} ms | {p99:,.1f} ms | "
        f"{_met(p99 < FANOUT_P99_TARGET_MS)} |",
        f"| worker memory < {MEMORY_TARGET_MIB:g} MB with the clients | "
        f"{stream.rss_peak:.0f} MiB peak | {_met(stream.rss_peak < MEMORY_TARGET_MIB)} |",
        f"| memory back down after they leave | {stream.rss_before:.0f} -> {stream.rss_peak:.0f} "
        f"-> {stream.rss_after:.0f} MiB | "
        f"{_met(released)} |",
    ]
    for result in http:
        rate = result.requests / result.seconds
        lines.append(
            f"| `{result.path}` >= {HTTP_TARGET_PER_S:,.0f} requests/s at concurrency 50 | "
            f"{rate:,.0f}/s | {_met(rate >= HTTP_TARGET_PER_S and not result.errors)} |"
        )
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


async def bench(args: argparse.Namespace, run: Isolated) -> tuple[StreamResult, list[HttpResult]]:
    stream = await run_streams(args, run)
    progress(f"HTTP load: {args.concurrency} in flight, {args.http_seconds:g} s per path")
    base_url = run.workers[0].base_url
    http = [
        await load(base_url, path, args.http_seconds, args.concurrency)
        for path in ("/api/seats", "/api/state")
    ]
    return stream, http


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=2000, help="event-stream clients")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="load per path, s")
    parser.add_argument("--concurrency", type=int, default=50, help="HTTP requests in flight")
    # A handler learns its client left at its next write, a heartbeat at most 15 s on.
    parser.add_argument("--settle", type=float, default=30.0, help="wait before memory after, s")
    parser.add_argument("--partitions", type=int, default=settings.topic_partitions)
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait per phase, s")
    add_run_arguments(parser, settings.kafka_bootstrap_servers, settings.redis_url)
    args = parser.parse_args(argv)
    args.env = worker_env(parser, args.env)
    if args.clients < 1 or args.concurrency < 1:
        parser.error("--clients and --concurrency must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = shlex.join(sys.argv[1:] if argv is None else argv)
    command = f"python -m scripts.bench.fanout {given}".rstrip()
    # Each client is a socket here and one in the worker, which inherits this limit.
    fd_limit = raise_open_file_limit(args.clients + args.concurrency + 1024)
    load_before = load_average()
    started = dt.datetime.now(dt.UTC)
    run = Isolated(
        args.bootstrap_servers,
        args.redis_url,
        NIGHT_ELECTION_ID,
        get_settings().data_dir,
        args.partitions,
        args.env,
    )
    with timer() as elapsed:
        run.create_topics()
        try:
            progress("starting a fresh worker")
            run.start_workers(1)
            run.settle()
            stream, http = asyncio.run(bench(args, run))
        finally:
            run.cleanup()
    text = "\n".join(
        [
            f"### Fan-out: {started:%Y-%m-%d %H:%M} UTC",
            "",
            f"`{command}` ({elapsed():.0f} s); "
            f"{machine('the worker, Kafka, Redis and the load client', load_before)}.",
            "",
            report(stream, http, fd_limit),
            "",
        ]
    )
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
