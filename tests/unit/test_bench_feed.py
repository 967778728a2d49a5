"""The benchmark's synthetic feed is a night the worker accepts: dated in the past, within it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import orjson

from scripts.bench import feed as bench_feed
from streams.rules.reference import load_register
from streams.rules.validation import Accepted, FeedPosition, validate_message
from streams.settings import Settings

# The settings' defaults, as the benchmark's workers run with them.
DEFAULT_WINDOW = Settings().night_window()


def test_every_message_of_a_small_feed_is_accepted_now(tmp_path: Path) -> None:
    specs = bench_feed.seat_specs(3, 6)
    register = load_register(bench_feed.write_reference_files(tmp_path, specs))
    for offset, item in enumerate(bench_feed.feed(specs, 3)):
        # No `now`: the wall clock, as on the benchmark's run.
        verdict = validate_message(
            item.value,
            FeedPosition("declarations", 0, offset, item.key),
            register,
            None,
            window=DEFAULT_WINDOW,
        )
        assert isinstance(verdict, Accepted), verdict.rejection.detail  # type: ignore[union-attr]


def test_a_feed_of_a_million_seats_still_ends_within_the_night(tmp_path: Path) -> None:
    first = bench_feed.seat_specs(1, 6)[0]
    register = load_register(bench_feed.write_reference_files(tmp_path, [first]))
    # A seat far down a huge feed: a tenth of a second per seat would put it a day past the end.
    far = dataclasses.replace(first, index=1_000_000)
    raw = bench_feed.declaration_bytes(far, 10)
    declared_at = orjson.loads(raw)["declared_at"]
    assert declared_at == bench_feed.LAST_DECLARED_AT.isoformat()
    night_ends = bench_feed.POLLS_CLOSE + DEFAULT_WINDOW.ends_after_polls_close
    assert night_ends > bench_feed.LAST_DECLARED_AT
    position = FeedPosition("declarations", 0, 0, far.ons_id.encode())
    verdict = validate_message(raw, position, register, None, window=DEFAULT_WINDOW)
    assert isinstance(verdict, Accepted), verdict.rejection.detail  # type: ignore[union-attr]


def test_the_feed_is_in_declaration_time_order_as_a_clean_night_is() -> None:
    specs = bench_feed.seat_specs(3, 2)
    feed = bench_feed.feed(specs, 3)
    times = [dt.datetime.fromisoformat(orjson.loads(i.value)["declared_at"]) for i in feed]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[:2] == [
        dt.datetime(2020, 5, 7, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2020, 5, 7, 23, 0, 0, 100_000, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ]
    # The last seat of the default 10,000 in its tenth revision: 21 hours after polls close.
    last = dataclasses.replace(specs[0], index=9_999)
    declared_at = orjson.loads(bench_feed.declaration_bytes(last, 10))["declared_at"]
    assert dt.datetime.fromisoformat(declared_at) < bench_feed.POLLS_CLOSE + dt.timedelta(hours=21)
