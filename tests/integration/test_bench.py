"""The throughput benchmark on a tiny feed: it runs, and its tables hold what they should.

Speed is never asserted here: only that every measurement is printed and every message is
accounted for, so the benchmark cannot rot between the runs that write docs/benchmarks.md.
"""

from __future__ import annotations

import re
import subprocess
import sys

from scripts.worker_process import PROJECT_ROOT


def rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell."""
    found = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            found[cells[0]] = cells[1:]
    return found


def test_the_benchmark_prints_every_table_from_one_command(
    kafka_bootstrap: str, redis_url: str
) -> None:
    seats, revisions = 30, 2
    command = [
        sys.executable,
        "-m",
        "scripts.bench",
        *("--seats", str(seats), "--revisions", str(revisions), "--candidates", "3"),
        *("--rate", "40", "--rate-seconds", "1", "--partitions", "2", "--timeout", "90"),
        *("--bootstrap-servers", kafka_bootstrap, "--redis-url", redis_url),
    ]
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("## ") and "python -m scripts.bench --seats 30" in out
    table = rows(out)

    declarations = seats * revisions
    assert table["declarations"][:2] == [f"{declarations}", f"{declarations}"]
    for name in ("first produce to last tally in Redis, s", "declarations per second"):
        pipeline, baseline = (float(v.replace(",", "")) for v in table[name][:2])
        assert pipeline > 0 and baseline > 0
    assert re.fullmatch(r"\d+\.\dx", table["declarations per second"][2])
    assert float(table["first produce to every output on Kafka, s"][0]) > 0
    assert float(table["peak memory (VmHWM), MiB"][0]) > 0
    # The publisher runs in a process of its own beside the worker: its cost is shown apart.
    assert float(table["publisher processes: peak memory (VmHWM), MiB"][0]) > 0
    publisher_cpu = "publisher processes: CPU per 1,000 declarations until every output on Kafka, s"
    assert float(table[publisher_cpu][0]) > 0
    consumed = declarations + 40 + 40  # the feed, one second at 40/s, and the warm-up seats
    accounted = table["messages accounted for (validation and tally counters)"][0]
    assert accounted == f"{consumed} of {consumed}"

    for name, seen in (
        ("tally visible, at 40/s", "40/40"),
        ("alert on the alerts topic, at 40/s", "40/40"),
        ("tally visible, at saturation", f"{declarations}/{declarations}"),
        ("alert on the alerts topic, at saturation", f"{declarations}/{declarations}"),
    ):
        assert table[name][0] == seen, name
        p50, p95, p99, worst = (float(v.replace(",", "")) for v in table[name][1:])
        assert 0 <= p50 <= p95 <= p99 <= worst, name

    # The rebuild re-reads every declaration of the run, and prints how fast it went.
    assert table["messages read from the declarations topic"][0] == f"{consumed}"
    assert re.fullmatch(r"[\d,]+ \(\d+\.\dx live\)", table["messages per second"][0])

    night = "first message to final state (all seats tallied, all outputs on Kafka)"
    assert float(table[night][0]) > 0
    assert float(table["last message produced to final state"][0]) >= 0
    assert "the 2024 night, --speed max (651 messages)" in out
    targets = out.split("| target | measured | |", 1)[1].strip().splitlines()[1:]
    # throughput, ratio, rebuild, alert latency, the night
    assert len(targets) == 5, targets
    verdicts = [line.rstrip(" |").rsplit("|", 1)[1].strip() for line in targets]
    assert all(re.match(r"(not )?met\b", verdict) for verdict in verdicts), verdicts
