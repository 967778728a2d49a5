"""The night's clock: the watermark, and the national moments told in declaration time."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from functools import cache

import pytest

from schemas.alert import AlertType
from schemas.results import SeatResult
from scripts.night_builder import Night, build_night
from streams.rules.alerts import AlertPolicy
from streams.rules.alerts.story import (
    NightStory,
    StoryDiff,
    StoryStep,
    last_declaration_told,
    slot_text,
)
from streams.rules.event_time import (
    EARLIEST,
    PartitionProgress,
    PartitionStalls,
    event_key,
    key_from_text,
    key_text,
    watermark,
)
from streams.rules.tally import seat_contribution, seat_result
from tests.unit.tally_fixtures import DATA_DIR

HOUGHTON, PRESTON, INVERNESS = "E14001295", "E14001433", "S14000094"
UK = dt.timezone(dt.timedelta(hours=1))


# --- the watermark ---------------------------------------------------------------------------


def key(minute: int, name: str = "Seat") -> tuple[int, str, str, int]:
    return event_key(dt.datetime(2024, 7, 5, 0, minute, tzinfo=dt.UTC), name, "E1", 1)


def test_partitions_read_to_their_end_hold_nothing_back() -> None:
    assert watermark([PartitionProgress(9, 10, key(5)), PartitionProgress(-1, 0, None)]) is None
    assert watermark([]) is None


def test_a_partition_with_messages_unread_holds_back_what_comes_after_its_clock() -> None:
    partitions = [
        PartitionProgress(9, 10, key(50)),  # read to its end
        PartitionProgress(3, 8, key(20)),  # behind, at minute 20
        PartitionProgress(7, 30, key(30)),  # behind, at minute 30
    ]
    assert watermark(partitions) == key(20)
    # One that has applied nothing yet could still deliver anything.
    assert watermark([*partitions, PartitionProgress(-1, 4, None)]) == EARLIEST
    # Not asked the broker (end unknown): counted as behind.
    assert watermark([PartitionProgress(9, None, key(40))]) == key(40)


def test_a_partition_that_stopped_moving_stops_holding_the_night_back() -> None:
    now = [0.0]
    stalls = PartitionStalls(10.0, clock=lambda: now[0])
    stuck = {0: PartitionProgress(3, 8, key(20)), 1: PartitionProgress(5, 9, key(40))}
    assert watermark(stalls.moving(stuck)) == key(20)
    now[0] = 9.0
    moved = {0: stuck[0], 1: PartitionProgress(6, 9, key(41))}
    assert watermark(stalls.moving(moved)) == key(20)
    now[0] = 10.5  # partition 0 has not moved for 10.5 s; partition 1 moved 1.5 s ago
    assert watermark(stalls.moving(moved)) == key(41)
    now[0] = 11.0
    assert watermark(stalls.moving({0: PartitionProgress(4, 8, key(21)), 1: moved[1]})) == key(21)


def test_a_key_survives_redis_even_with_a_bar_in_the_seat_name() -> None:
    original = key(3, "Odd | Name")
    assert key_from_text(key_text(original)) == original


def test_seats_of_the_same_minute_are_taken_by_name_as_the_replay_sends_them() -> None:
    at = dt.datetime(2024, 7, 5, 5, 3, tzinfo=UK)
    assert event_key(at, "Preston", "E14001433") < event_key(at, "Rochdale", "E14001455")
    assert event_key(at, "Zetland", "E1") < event_key(at + dt.timedelta(seconds=1), "Aa", "E2")


# --- the story -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Told:
    step: StoryStep
    result: SeatResult


@cache
def the_night() -> Night:
    return build_night(DATA_DIR)


@cache
def night_steps() -> tuple[Told, ...]:
    night = the_night()
    register = night.register
    told = []
    for sequence, declaration in enumerate(night.declarations, start=1):
        ref = register.constituencies[declaration.constituency_id]
        result = seat_result(declaration, ref, sequence)
        step = StoryStep.of_change(
            event_key(declaration.declared_at, ref.name, ref.ons_id, declaration.revision),
            sequence,
            seat_contribution(declaration, ref),
        )
        told.append(Told(step, result))
    return tuple(told)


def moments_of(story: NightStory) -> dict[tuple[AlertType, str | None], str]:
    """The seat at which each moment first passed."""
    return {
        (alert_type, party): moment.step.ons_id
        for (alert_type, party, passing), moment in story.moments.items()
        if passing == 0
    }


def test_the_night_in_order_tells_each_moment_once_at_its_seat() -> None:
    story = NightStory(the_night().register)
    for told in night_steps():
        story.add(told.step)
        diff = story.tell(None)
        assert not diff.moved and not diff.withdrawn
    moments = moments_of(story)
    assert moments[(AlertType.FIRST_DECLARATION, None)] == HOUGHTON
    assert moments[(AlertType.MAJORITY_WON, "Lab")] == PRESTON
    assert moments[(AlertType.LAST_DECLARATION, None)] == INVERNESS
    assert (AlertType.CANNOT_BE_OVERTAKEN, "Lab") not in moments
    assert len(story.moments) == 4  # first, last, largest party certain, majority


@pytest.mark.parametrize(("seed", "reach"), [(1, 40), (2, 40), (3, 650)])
def test_in_any_order_of_arrival_the_story_ends_the_same(seed: int, reach: int) -> None:
    """Each seat arrives up to `reach` places from where it declared (a backlog read from
    four partitions); 650 is any order at all."""
    register = the_night().register
    in_order = NightStory(register)
    for told in night_steps():
        in_order.add(told.step)
    rng = random.Random(seed)
    shuffled = sorted(night_steps(), key=lambda told: told.step.sequence + rng.uniform(0, reach))
    story = NightStory(register)
    for told in shuffled:
        story.add(told.step)
    assert moments_of(story) == moments_of(in_order)
    assert {slot: m.step.key for slot, m in story.moments.items()} == {
        slot: m.step.key for slot, m in in_order.moments.items()
    }


def test_preston_arriving_late_moves_the_majority_to_preston_with_an_amendment() -> None:
    night = the_night()
    register = night.register
    story = NightStory(register)
    results = {told.step.sequence: told.result for told in night_steps()}
    late = next(told for told in night_steps() if told.step.ons_id == PRESTON)
    for told in night_steps():
        if told is not late:
            story.add(told.step)
            story.tell(None)  # each moment told as it happens: nothing held back
    first_majority = story.moments[(AlertType.MAJORITY_WON, "Lab", 0)]
    assert first_majority.step.ons_id != PRESTON
    first_id = story.told[(AlertType.MAJORITY_WON, "Lab", 0)].alert_id
    # Without Preston only 649 seats declared: the last declaration is not told yet.
    assert (AlertType.LAST_DECLARATION, None, 0) not in story.moments

    story.add(late.step)
    # With the watermark at Preston itself, only what Preston moved is told...
    early = story.tell(late.step.key)
    assert [m.now.step.ons_id for m in early.moved] == [PRESTON] and not early.told
    # ...and the rest of the night once nothing holds it back.
    rest = story.tell(None)
    diff = StoryDiff(early.told + rest.told, early.moved + rest.moved)
    alerts = story.alerts(diff, results, AlertPolicy())
    [amended] = [a for a in alerts if a.replaces_type is AlertType.MAJORITY_WON]
    assert amended.type is AlertType.AMENDED
    assert amended.constituency_id == PRESTON
    assert amended.occurred_at == late.result.declared_at
    assert amended.supersedes[0] == first_id
    assert "Preston" in amended.headline and amended.headline.startswith("Amended")
    assert amended.figures["seats"] == 326
    # The night is whole now: the last declaration is Inverness, told as news, not amended.
    [last] = [a for a in alerts if a.type is AlertType.LAST_DECLARATION]
    assert last.constituency_id == INVERNESS
    assert not diff.withdrawn
    assert moments_of(story)[(AlertType.MAJORITY_WON, "Lab")] == PRESTON


def test_a_seat_told_late_that_moves_no_moment_amends_nothing() -> None:
    register = the_night().register
    story = NightStory(register)
    steps = night_steps()
    # A Conservative hold in the small hours, well after the first declaration, before the
    # majority, and far from the largest party being certain.
    late = next(
        t for t in steps if t.result.winning_party == "Con" and t.result.declared_at.hour in (1, 2)
    )
    four_am = dt.datetime(2024, 7, 5, 4, 0, tzinfo=UK)
    for told in steps:
        if told is not late and told.result.declared_at < four_am:
            story.add(told.step)
    story.tell(None)
    story.add(late.step)
    assert not story.pending and not story.tell(None)


def test_moments_wait_for_the_watermark_and_are_never_amended_in_a_clean_feed() -> None:
    """A backlog read out of order: nothing is told past the watermark, so nothing moves."""
    story = NightStory(the_night().register)
    steps = list(night_steps())
    rng = random.Random(5)
    arrived = sorted(steps, key=lambda told: told.step.sequence + rng.uniform(0, 60))
    told_alerts = 0
    for at, told in enumerate(arrived):
        story.add(told.step)
        # The watermark: the earliest step not yet arrived, which a partition could still hold.
        waiting = [t.step.key for t in arrived[at + 1 :]]
        diff = story.tell(min(waiting) if waiting else None)
        assert not diff.moved and not diff.withdrawn
        told_alerts += len(diff.told)
    assert told_alerts == 4 and not story.pending
    assert moments_of(story)[(AlertType.MAJORITY_WON, "Lab")] == PRESTON


def test_the_night_is_whole_once_its_last_declaration_is_told() -> None:
    last = slot_text((AlertType.LAST_DECLARATION, None, 1))
    first = slot_text((AlertType.FIRST_DECLARATION, None, 1))
    assert not last_declaration_told({})
    assert not last_declaration_told({first: "a1|k"})
    assert last_declaration_told({first: "a1|k", last: "a2|k"})
    # A withdrawn moment's record is empty: it was told, then taken back.
    assert not last_declaration_told({last: ""})
