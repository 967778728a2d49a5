"""The replay against a real broker: every message arrives, keyed, in order per seat."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from scripts.replay import build_outgoing, kafka_sender, main, replay

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"


def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0
) -> list[tuple[str, bytes]]:
    """Everything on `topic` from the start: waits for `expected`, then a little longer for
    anything beyond it, so too many messages fail the test as surely as too few."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    read: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                read += [(r.key.decode(), r.value) for r in records]
            if len(read) >= expected and not batches:
                break
    finally:
        consumer.close()
    return read


def test_the_whole_night_at_full_speed(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("replay-night", partitions=4)
    argv = ["--speed", "max", "--topic", topic, "--bootstrap-servers", kafka_bootstrap]
    assert main(argv) == 0
    read = consume(kafka_bootstrap, topic, 651)
    assert len(read) == 651
    feed = build_outgoing(DATA_DIR)
    assert Counter(read) == Counter((o.key, o.value) for o in feed)
    keys = Counter(key for key, _ in read)
    assert keys["exit-poll"] == 1 and len(keys) == 651  # one message per seat, by ONS id


def test_chaos_7_arrives_exactly_as_reported(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("replay-chaos", partitions=4)
    feed = build_outgoing(DATA_DIR, chaos_seed=7)
    with kafka_sender(kafka_bootstrap, topic, 4) as send:
        report = replay(feed, send, speed=None)
    read = consume(kafka_bootstrap, topic, report.total)
    assert len(read) == report.total == len(feed)
    assert Counter(read) == Counter((o.key, o.value) for o in feed)
    # A key always lands on one partition, so each seat's messages keep the order sent.
    sent_by_key: dict[str, list[bytes]] = defaultdict(list)
    read_by_key: dict[str, list[bytes]] = defaultdict(list)
    for o in feed:
        sent_by_key[o.key].append(o.value)
    for key, value in read:
        read_by_key[key].append(value)
    assert read_by_key == sent_by_key


def test_the_chaos_7_command_sends_what_its_summary_reports(
    kafka_bootstrap: str, unique_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = unique_topic("replay-chaos-cli", partitions=4)
    argv = ["--speed", "max", "--chaos", "7", "--topic", topic]
    assert main([*argv, "--bootstrap-servers", kafka_bootstrap]) == 0
    summary = capsys.readouterr().err
    sent = re.search(r"Sent (\d+) messages", summary)
    assert sent is not None, summary
    read = consume(kafka_bootstrap, topic, int(sent.group(1)))
    assert len(read) == int(sent.group(1))
    feed = build_outgoing(DATA_DIR, chaos_seed=7)
    assert Counter(read) == Counter((o.key, o.value) for o in feed)
