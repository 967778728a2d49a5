"""10,000 bad messages interleaved with the true night, through a real worker: it survives them.

Each bad message must come out on the dead-letter topic with the reason its class expects,
the true night must still end at the official result, the counters must add up, and the
worker's peak resident memory must stay under a bound.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from kafka import KafkaProducer

from schemas.rejection import Rejection
from scripts.night_builder import Night
from scripts.replay import build_outgoing
from streams.rules.validation import MAX_KEY_BYTES
from tests.integration.pipeline import DATA_DIR, Pipeline
from tests.integration.test_night_pipeline import assert_official_result
from tests.unit.bad_input import BadMessage, corpus

BAD_MESSAGES = 10_000
SEED = 20240704
FIGURES = Path(__file__).resolve().parents[2] / "artifacts" / "fuzz-night.json"
# Peak resident memory of the worker. Ready, before any message, it held 75 MB in our
# runs, and peaked at 117 MB over this whole test (artifacts/fuzz-night.json records both):
# the night's tallies and outputs plus what is in flight at once, Faust's fetched records
# (at most 4 MiB per partition fetch, so a few of the largest, ~0.9 MB, messages), a batch
# of 200 being validated and its dead letters. The corpus is ~110 MB: a worker that kept
# every bad message, or its dead letter, would cross this bound.
PEAK_RSS_LIMIT_MB = 250


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {pid}")


def rss_mb(pid: int) -> float:
    """VmRSS: resident memory now."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had, from the kernel."""
    return _status_mb(pid, "VmHWM")


def send_interleaved(
    pipeline: Pipeline, valid: list[tuple[bytes, bytes]], bad: list[BadMessage]
) -> dict[tuple[int, int], BadMessage]:
    """The night with the bad messages spread evenly between its messages; where each bad
    one landed (partition, offset)."""
    producer = KafkaProducer(
        bootstrap_servers=pipeline.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_request_size=1_048_576,  # the broker's own limit; the worker's is lower
        max_block_ms=30_000,
    )
    topic = pipeline.topics["declarations"]
    per_valid = len(bad) // len(valid) + 1
    futures = []
    queue = iter(bad)
    for key, value in valid:
        for item in [next(queue, None) for _ in range(per_valid)]:
            if item is not None:
                futures.append((item, producer.send(topic, key=item.key, value=item.value)))
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=120)
    producer.close(timeout=10)
    landed = {}
    for item, future in futures:
        metadata = future.get(timeout=30)
        landed[(metadata.partition, metadata.offset)] = item
    assert len(landed) == len(bad)
    return landed


def test_the_worker_survives_ten_thousand_bad_messages_and_still_gets_the_night_right(
    pipeline: Pipeline, night: Night
) -> None:
    bad = corpus(BAD_MESSAGES, seed=SEED)
    valid = [(item.key.encode(), item.value) for item in build_outgoing(DATA_DIR)]
    began = time.monotonic()
    with pipeline.worker("fuzz") as worker:
        worker.wait_for_log("Ready", timeout=120)
        assert worker.process is not None
        ready_mb = rss_mb(worker.process.pid)
        landed = send_interleaved(pipeline, valid, bad)

        def alive() -> None:
            assert worker.process is not None and worker.process.poll() is None, worker.tail()

        pipeline.wait_until_published(night.register, timeout=300, worker_alive=alive)
        deadline = time.monotonic() + 120
        while True:  # the last bad messages may still be in their batch
            counters = pipeline.counters()
            validated = sum(n for k, n in counters.items() if k.startswith("validation:"))
            if validated >= len(valid) + len(bad) or time.monotonic() > deadline:
                break
            alive()
            time.sleep(0.5)
        alive()
        peak_mb = peak_rss_mb(worker.process.pid)
        log = worker.log()
    elapsed = time.monotonic() - began

    # The true night, untouched by what came between its messages.
    assert_official_result(pipeline, night)
    assert counters["validation:accepted"] == len(valid) == 651
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651
    prefix = "validation:rejected:"
    rejected = {k.removeprefix(prefix): n for k, n in counters.items() if k.startswith(prefix)}
    assert sum(rejected.values()) == len(bad)

    # Every bad message on the dead-letter topic once, for the reason its class expects.
    letters = pipeline.read("dead_letter")
    assert len(letters) == len(bad)
    reasons: Counter[str] = Counter()
    for key, value, headers in letters:
        assert key is None or len(key) <= MAX_KEY_BYTES
        rejection = Rejection.model_validate_json(value)
        sent = landed[(rejection.source_partition, rejection.source_offset)]
        assert rejection.reason == sent.reason, (sent.kind, rejection.detail)
        assert headers["reason"] == rejection.reason.value.encode()
        assert rejection.detail
        reasons[rejection.reason.value] += 1
    assert reasons == Counter(rejected)
    assert "Traceback" not in log and "crashed" not in log.lower(), log[-3000:]
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"worker peaked at {peak_mb:.0f} MB"

    figures = {
        "messages_fuzzed": len(bad),
        "bytes_fuzzed": sum(len(b.value) + len(b.key or b"") for b in bad),
        "valid_messages": len(valid),
        "dead_letters": len(letters),
        "dead_letters_by_reason": dict(reasons.most_common()),
        "classes": dict(Counter(b.family for b in bad).most_common()),
        "worker_rss_when_ready_mb": round(ready_mb, 1),
        "worker_peak_rss_mb": round(peak_mb, 1),
        "elapsed_s": round(elapsed, 1),
    }
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2))
    print("\nnight fuzz:", json.dumps(figures))
