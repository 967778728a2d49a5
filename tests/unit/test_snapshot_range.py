"""The state snapshots' range: the first made at once, later ones on a thread, taken in halfway."""

from __future__ import annotations

import datetime as dt

import pytest

from streams.pipeline.publisher import Telling, projection_now, range_apart
from streams.rules.alerts.story import NightStory
from streams.rules.projection import Projecting, Projection, RunningProjection
from streams.rules.reference import load_register
from tests.unit.projection_fixtures import DATA_DIR, ge2024_seats

START = dt.datetime(2024, 7, 5, 0, 0, tzinfo=dt.UTC)


def telling_of(every_s: float) -> Telling:
    baseline, _ = ge2024_seats(1)
    projecting = Projecting(baseline, resamples=40, range_every=dt.timedelta(seconds=every_s))
    return Telling(NightStory(load_register(DATA_DIR), {}), projecting=projecting)


def ranges(projection: Projection | None) -> dict[str, tuple[int, int]]:
    assert projection is not None
    return {p.party: (p.low, p.high) for p in projection.parties}


def test_a_later_range_is_made_apart_and_taken_in_halfway_to_the_next() -> None:
    _, seats = ge2024_seats(650)
    telling = telling_of(60)
    running = telling.projected
    assert running is not None

    def put(upto: int) -> None:
        for seat in seats[upto - 50 : upto]:
            running.put(seat)

    def at(seconds: int, upto: int | None = None) -> Projection | None:
        if upto is not None:
            put(upto)
        telling.as_of = START + dt.timedelta(seconds=seconds)
        return projection_now(telling, running)

    first = at(0, 150)  # the first range: made there and then
    assert first == running.projection() and telling.ranging is None
    # Not due yet: the first range, widened to the fresh central figures.
    assert at(30, 200) == running.projection(range_from=first)
    # Due: asked for on a thread, from the seats as they stand now; meanwhile the last range.
    put(250)
    asked = running.copy()
    assert at(60) == running.projection(range_from=first)
    assert telling.ranging is not None and telling.ranged is first
    assert at(89, 300) == running.projection(range_from=first)  # not yet halfway
    # Halfway to the next: taken in, whenever the thread finished.
    taken = at(90, 350)
    fresh = asked.projection()
    assert telling.ranging is None and telling.ranged == fresh
    assert taken == running.projection(range_from=fresh)
    assert ranges(fresh) != ranges(first)


def test_with_no_interval_every_snapshot_has_a_range_of_its_own() -> None:
    _, seats = ge2024_seats(400)
    telling = telling_of(0)
    running = telling.projected
    assert running is not None
    for n, upto in enumerate(range(100, 401, 100)):
        for seat in seats[upto - 100 : upto]:
            running.put(seat)
        telling.as_of = START + dt.timedelta(seconds=n)
        assert projection_now(telling, running) == running.projection()
        assert telling.ranging is None


class Failing(RunningProjection):
    def projection(self, seed: int = 0, range_from: Projection | None = None) -> Projection | None:
        raise ValueError("no range tonight")


def test_a_range_that_failed_on_its_thread_fails_whoever_takes_it_in() -> None:
    baseline, _ = ge2024_seats(1)
    made = range_apart(Failing(Projecting(baseline)))
    with pytest.raises(ValueError, match="no range tonight"):
        made.result(timeout=10)
