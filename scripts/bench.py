"""Benchmarks of the hot path: validation, and the tally store on a real Redis by batch size.

    python -m scripts.bench [--rounds 3] [--write docs/benchmarks.md]

Speed and memory are measured here and written down, never asserted by timed unit tests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

from scripts.night_builder import Night, build_night
from streams.connections import redis_from_settings
from streams.settings import get_settings
from streams.tally_store import PendingApply, TallyStore
from streams.validation import FeedPosition, validate_message


def bench_validation(night: Night, rounds: int) -> float:
    raw = [(d.constituency_id, d.model_dump_json().encode()) for d in night.declarations]
    rates = []
    for _ in range(rounds):
        began = time.perf_counter()
        for offset, (key, value) in enumerate(raw):
            validate_message(value, FeedPosition("bench", 0, offset, key.encode()), night.register)
        rates.append(len(raw) / (time.perf_counter() - began))
    return statistics.median(rates)


async def bench_tally(night: Night, redis_url: str, batch: int, rounds: int) -> float:
    redis = redis_from_settings(get_settings(), url=redis_url)
    rates = []
    try:
        for _ in range(rounds):
            store = TallyStore(redis, night.register.election_id, f"bench-{uuid.uuid4().hex}:")
            items = [PendingApply(d, "bench", 0, i) for i, d in enumerate(night.declarations)]
            began = time.perf_counter()
            for start in range(0, len(items), batch):
                await store.apply_batch(items[start : start + batch], night.register)
            rates.append(len(items) / (time.perf_counter() - began))
            await store.reset()
    finally:
        await redis.aclose()
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=get_settings().redis_url)
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args(argv)

    night = build_night(get_settings().data_dir)
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{platform.machine()}, median of {args.rounds}",
        "",
        "| what | declarations per second |",
        "|---|---|",
        f"| validate_message (parse, schema, register checks) | "
        f"{bench_validation(night, args.rounds):,.0f} |",
    ]
    for batch in (1, 50, 200):
        rate = asyncio.run(bench_tally(night, args.redis_url, batch, args.rounds))
        lines.append(f"| TallyStore.apply_batch, batch of {batch}, real Redis | {rate:,.0f} |")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak resident memory of the benchmark process: {peak_mib:.0f} MiB.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        with args.write.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
