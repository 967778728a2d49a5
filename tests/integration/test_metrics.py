"""/metrics of a real worker: outcome counts match what was sent, latency and lag are there."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from scripts.replay import build_outgoing
from tests.integration.pipeline import DATA_DIR, Pipeline, new_pipeline

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(base_url: str) -> Samples:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def by_outcome(samples: Samples, stage: str) -> Counter[str]:
    return Counter(
        {
            labels["outcome"]: int(value)
            for labels, value in samples.get("election_messages_total", [])
            if labels["stage"] == stage and value
        }
    )


def test_metrics_count_every_message_and_time_and_lag_the_consumer(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, unique_topic: Callable[..., str]
) -> None:
    pipeline: Pipeline = new_pipeline(kafka_bootstrap, redis_url, redis_prefix, unique_topic)
    # The exit poll and the first hundred-odd messages of a messy feed: duplicates, bad bytes,
    # invalid messages and corrections, each with its own outcome.
    feed = build_outgoing(DATA_DIR, chaos_seed=7)[:150]
    rejected = Counter(
        f"rejected:{item.expected_rejection.value}"
        for item in feed
        if item.must_be_rejected and item.expected_rejection is not None
    )
    accepted = len(feed) - sum(1 for item in feed if item.must_be_rejected)
    assert rejected and accepted  # the slice holds both kinds
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(feed)
        deadline = time.monotonic() + 120
        while True:
            samples = scrape(worker.base_url)
            tallied = sum(by_outcome(samples, "tally").values())
            lag = samples.get("election_consumer_lag", [])
            settled = lag and all(value == 0 for _, value in lag)
            if (tallied >= accepted and settled) or time.monotonic() > deadline:
                break
            time.sleep(0.5)

    validation = by_outcome(samples, "validation")
    assert validation == Counter({"accepted": accepted, **rejected})
    # What the worker exports is what Redis counted: one outcome per consumed message.
    counters = pipeline.counters()
    assert validation == Counter(
        {k.split(":", 1)[1]: n for k, n in counters.items() if k.startswith("validation:")}
    )
    assert by_outcome(samples, "tally") == Counter(
        {k.split(":", 1)[1]: n for k, n in counters.items() if k.startswith("tally:")}
    )
    assert sum(by_outcome(samples, "tally").values()) == accepted

    [(_, timed)] = samples["election_processing_latency_seconds_count"]
    assert timed == accepted
    [(_, total_s)] = samples["election_processing_latency_seconds_sum"]
    assert 0 < total_s < accepted * 60

    lagged = {(labels["topic"], labels["partition"]) for labels, _ in lag}
    topic = pipeline.topics["declarations"]
    assert {partition for name, partition in lagged if name == topic} == {"0", "1", "2", "3"}
    assert all(value == 0 for _, value in lag), lag
