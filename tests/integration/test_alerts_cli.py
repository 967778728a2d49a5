"""`alerts tail` against a real broker: order, filters, JSON lines, escaping, following, errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable

import orjson
from kafka import KafkaProducer

from schemas.alert import Alert, AlertPriority, AlertType
from tests.integration.helpers import PROJECT_ROOT

BST = dt.timezone(dt.timedelta(hours=1))


def an_alert(n: int, priority: AlertPriority, headline: str, rehearsal: bool = False) -> Alert:
    return Alert(
        alert_id=f"test-alert-{n}",
        election_id="parl.2024-07-04",
        rehearsal=rehearsal,
        type=AlertType.SEAT_GAIN,
        priority=priority,
        headline=headline,
        body="body",
        occurred_at=dt.datetime(2024, 7, 5, 1, n, tzinfo=BST),
    )


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()


def alerts_command(
    bootstrap: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.alerts_cli", "tail", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ELECTION_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


ALERTS = [
    an_alert(1, AlertPriority.LOW, "Labour gain Hendon from the Conservatives", rehearsal=True),
    an_alert(2, AlertPriority.FLASH, "Former prime minister Liz Truss loses South West Norfolk"),
    an_alert(3, AlertPriority.HIGH, "[bold red]Injected[/] <script>alert(1)</script>"),
]


def test_tail_prints_every_alert_in_order_and_names_what_is_not_one(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("alerts")
    values = [a.model_dump_json().encode() for a in ALERTS]
    produce(kafka_bootstrap, topic, [values[0], b"{not an alert", *values[1:]])

    done = alerts_command(kafka_bootstrap, "--topic", topic, "--from-beginning", "--no-follow")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    positions = [out.index(a.headline) for a in ALERTS]
    assert positions == sorted(positions)
    assert "offset 1: not an alert" in out
    # Markup from the feed is shown as it is, never interpreted by the terminal.
    assert "[bold red]Injected[/] <script>alert(1)</script>" in out
    assert "FLASH" in out and "test-alert-2" in out
    # A rehearsal's alert says so on its line; the live night's do not.
    assert "REHEARSAL Labour gain Hendon" in out and out.count("REHEARSAL") == 1


def test_tail_filters_by_priority_and_writes_json_lines(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("alerts")
    produce(kafka_bootstrap, topic, [a.model_dump_json().encode() for a in ALERTS])

    done = alerts_command(
        kafka_bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--no-follow",
        "--json",
        "--priority",
        "flash",
        "--priority",
        "high",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [orjson.loads(line)["alert_id"] for line in lines] == ["test-alert-2", "test-alert-3"]
    assert Alert.model_validate_json(lines[1]) == ALERTS[2]


def test_tail_follows_new_alerts_from_the_end(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("alerts")
    produce(kafka_bootstrap, topic, [ALERTS[0].model_dump_json().encode()])
    follower = subprocess.Popen(
        [sys.executable, "-m", "scripts.alerts_cli", "tail", "--topic", topic, "--count", "1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ELECTION_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # let it reach the end of the topic before the new alert arrives
        assert follower.poll() is None, "it stopped instead of following"
        produce(kafka_bootstrap, topic, [ALERTS[1].model_dump_json().encode()])
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert ALERTS[1].headline in out
    assert ALERTS[0].headline not in out  # already there before it started


def test_a_missing_topic_is_a_one_line_error(kafka_bootstrap: str) -> None:
    done = alerts_command(kafka_bootstrap, "--topic", "no-such-topic-for-alerts", "--no-follow")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "no topic 'no-such-topic-for-alerts'" in done.stderr
