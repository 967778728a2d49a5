"""The replay's feed: clean and chaotic nights, deterministic, every fault labelled."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

import orjson
import pytest

import scripts.replay as replay_module
from scripts.chaos import ChaosRates
from scripts.replay import build_outgoing, jsonl_sender, main, parse_clock, replay
from streams.rules.reference import load_register
from streams.rules.validation import Accepted, FeedPosition, Rejected, validate_message
from tests.unit.ge2024 import DATA_DIR

BST = dt.timezone(dt.timedelta(hours=1))


def test_the_same_seed_gives_the_same_chaos_message_for_message() -> None:
    first = build_outgoing(DATA_DIR, chaos_seed=7)
    again = build_outgoing(DATA_DIR, chaos_seed=7)
    other = build_outgoing(DATA_DIR, chaos_seed=8)
    assert [(o.key, o.value) for o in first] == [(o.key, o.value) for o in again]
    assert [(o.key, o.value) for o in first] != [(o.key, o.value) for o in other]


def test_chaos_is_rejected_exactly_where_labelled_and_true_results_end_highest() -> None:
    register = load_register(DATA_DIR)
    feed = build_outgoing(DATA_DIR, chaos_seed=11, rates=ChaosRates(duplicate=0.1, invalid=0.05))
    labels = Counter(o.label.split(":")[0] for o in feed)
    assert {"rush", "wrong_count", "correction", "recount_notice", "duplicate"} <= set(labels)
    assert {"malformed", "invalid"} <= set(labels)
    highest: dict[str, tuple[int, bytes]] = {}
    for offset, item in enumerate(feed):
        verdict = validate_message(item.value, FeedPosition("d", 0, offset), register)
        assert isinstance(verdict, Rejected) == item.must_be_rejected, item.label
        if isinstance(verdict, Accepted) and item.key != "exit-poll":
            revision = verdict.message.revision  # type: ignore[union-attr]
            if revision >= highest.get(item.key, (0, b""))[0]:
                highest[item.key] = (revision, item.value)
    clean = {o.key: o.value for o in build_outgoing(DATA_DIR) if o.key != "exit-poll"}
    assert len(highest) == 650
    for key, (_, value) in highest.items():
        true = orjson.loads(clean[key])
        final = orjson.loads(value)
        assert final["candidates"] == true["candidates"], key
        assert final["valid_votes"] == true["valid_votes"], key


def test_a_clock_window_of_the_night() -> None:
    feed = build_outgoing(DATA_DIR, start="23:00", until="00:30")
    assert feed and all(
        dt.datetime(2024, 7, 4, 23, 0, tzinfo=BST)
        <= o.at
        <= dt.datetime(2024, 7, 5, 0, 30, tzinfo=BST)
        for o in feed
    )
    assert parse_clock("07:00", dt.date(2024, 7, 4), BST).day == 5


def test_speed_paces_the_night_and_max_does_not_wait() -> None:
    feed = build_outgoing(DATA_DIR, start="23:00", until="01:00")
    waits: list[float] = []
    replay(feed, lambda key, value: None, speed=60.0, sleep=waits.append)
    night_span = (feed[-1].at - feed[0].at).total_seconds()
    assert sum(waits) == pytest.approx(night_span / 60.0)
    waits.clear()
    replay(feed, lambda key, value: None, speed=None, sleep=waits.append)
    assert waits == []


def test_a_dry_run_writes_one_json_line_per_message() -> None:
    feed = build_outgoing(DATA_DIR)
    buffer = io.BytesIO()
    with jsonl_sender(buffer) as send:
        report = replay(feed, send, speed=None)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == report.total == 651
    assert orjson.loads(lines[0])["key"] == "exit-poll"
    assert report.seats_declared == 650


def test_missing_files_and_no_broker_exit_with_one_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unreachable either way: a short connect timeout gets to the message without waiting.
    monkeypatch.setattr(replay_module, "CONNECT_TIMEOUT_MS", 200)
    assert main(["--dry-run", "--data-dir", "/nonexistent"]) == 1
    assert main(["--speed", "max", "--bootstrap-servers", "127.0.0.1:1"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 2
    assert "election.json" in errors[0] and "cannot reach Kafka" in errors[1]
