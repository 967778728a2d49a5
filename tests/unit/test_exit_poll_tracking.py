"""Exit-poll tracking: the projection held against the exit poll, step by step in the night's
own order, on a hand-made election worked out by hand and on the 2024 night in any batching."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from types import SimpleNamespace

import aiohttp
import fakeredis
import orjson
import pytest

from schemas.alert import Alert, AlertType
from schemas.common import Party
from schemas.exit_poll import ExitPoll, ExitPollProjection
from schemas.results import SeatResult
from scripts.alerts_of_the_night import tracking_alerts_of_the_night
from scripts.night_builder import Night, build_night
from streams.pipeline.publisher import Telling, into_story, tell, tell_moments
from streams.pipeline.webhooks import Subscriber
from streams.rules.alerts import AlertPolicy, alert_id, fact_id
from streams.rules.alerts.story import NightStory, StoryStep
from streams.rules.alerts.tracking import (
    BACK_IN_LINE,
    TRACKING,
    Tracking,
    departed,
)
from streams.rules.event_time import EventKey, PartitionProgress, event_key, watermark
from streams.rules.projection import (
    Baseline,
    DeclaredSeat,
    Model,
    Projecting,
    RunningProjection,
    declared_seat,
    project,
)
from streams.rules.reference import ConstituencyRef, Register
from streams.rules.tally import seat_contribution, seat_result
from streams.rules.watchlist import Watchlist, load_watchlist
from streams.settings import Settings
from streams.store.outbox import Outbox, Output
from streams.store.rebuild import outputs_on_kafka
from streams.store.tally_store import Change
from streams.web.live_feed import LiveFeed
from tests.store_helpers import announce
from tests.unit.tally_fixtures import DATA_DIR
from tests.unit.test_live_feed import take, until
from tests.unit.test_live_page import app, get
from tests.unit.test_webhooks import FAST, Receiver, serve

ELECTION = "parl.2024-07-04"
BST = dt.timezone(dt.timedelta(hours=1))
POLICY = AlertPolicy()
TRACKED_TYPES = (TRACKING, BACK_IN_LINE)

# --- a hand-made election --------------------------------------------------------------------
#
# Ten English seats, S01 to S10; seat k is Con 45+k, Lab 45-k in notional 2019 (Con ahead by
# 2k points). Under a uniform swing of x points from Con to Lab an undeclared seat k goes to
# Lab when 2k < 2x, that is when k < x. The exit poll says Lab 6, Con 4. Tracking: away when
# more than 3 seats off, back in line within 1, from 2 declared seats with figures.


def hand_seat(k: int) -> ConstituencyRef:
    name = f"S{k:02d}"
    return ConstituencyRef(
        ons_id=f"E{k:08d}",
        name=name,
        ballot_id=f"parl.{name.lower()}.2024-07-04",
        region="North",
        country="England",
        candidates={},
        notional_2019_winner="Con",
        notional_2019_shares={"Con": 0.45 + k / 100, "Lab": 0.45 - k / 100},
    )


HAND = Register(
    election_id=ELECTION,
    name="hand-made",
    polls_close=dt.datetime(2024, 7, 4, 22, tzinfo=BST),
    total_seats=10,
    speaker_party="Spk",
    constituencies={ref.ons_id: ref for ref in map(hand_seat, range(1, 11))},
    parties={
        "Con": Party(abbreviation="Con", name="Conservative"),
        "Lab": Party(abbreviation="Lab", name="Labour"),
    },
)


def hand_tracking(min_declared: int = 2) -> Tracking:
    projecting = Projecting(Baseline.of(HAND), model="uniform")
    return Tracking(
        projecting, departs_beyond=3, back_within=1, min_declared=min_declared, min_poll_seats=1
    )


def hand_poll(at: dt.datetime = dt.datetime(2024, 7, 4, 22, tzinfo=BST)) -> ExitPoll:
    return ExitPoll(
        election_id=ELECTION,
        published_at=at,
        total_seats=10,
        projections=[
            ExitPollProjection(party="Lab", seats=6),
            ExitPollProjection(party="Con", seats=4),
        ],
        source="hand-made",
    )


@dataclass(frozen=True)
class HandStep:
    step: StoryStep
    result: SeatResult


def hand_step(k: int, swing: float, minute: int, sequence: int) -> HandStep:
    """Seat k declared at 23:`minute` with a swing of `swing` points from Con to Lab."""
    ref = HAND.constituencies[f"E{k:08d}"]
    shares = {
        "Con": round(0.45 + k / 100 - swing / 100, 4),
        "Lab": round(0.45 - k / 100 + swing / 100, 4),
    }
    winner = max(shares, key=lambda party: shares[party])
    at = dt.datetime(2024, 7, 4, 23, minute, tzinfo=BST)
    key = event_key(at, ref.name, ref.ons_id, 1)
    step = StoryStep(
        key, sequence, ((winner, 1),), 1, seat=DeclaredSeat(ref.ons_id, winner, shares)
    )
    result = SeatResult(
        election_id=ELECTION,
        ballot_id=ref.ballot_id,
        constituency_id=ref.ons_id,
        constituency_name=ref.name,
        kind="result",
        revision=1,
        declared_at=at,
        sequence=sequence,
        figures_pending=False,
        recount=False,
        winning_party=winner,
        rehearsal=True,
    )
    return HandStep(step, result)


# The night in declaration order: (seat, swing to Lab in points, minute after 23:00).
HAND_NIGHT = [(10, 0, 10), (9, 0, 20), (8, 11, 30), (7, 10, 40), (6, -20, 50)]


def hand_steps(night: Sequence[tuple[int, float, int]] = HAND_NIGHT) -> list[HandStep]:
    return [hand_step(k, x, minute, n) for n, (k, x, minute) in enumerate(night, start=1)]


def told_alerts(story: NightStory, steps: Sequence[HandStep]) -> list[Alert]:
    results = {s.step.sequence: s.result for s in steps}
    return story.alerts(story.tell(None), results, POLICY)


def walk(story: NightStory, steps: Sequence[HandStep]) -> list[Alert]:
    """Each step put in and its moments told at once, as with nothing held back."""
    alerts: list[Alert] = []
    for step in steps:
        story.add(step.step)
        alerts += told_alerts(story, steps)
    return alerts


def tracked(alerts: Sequence[Alert]) -> list[tuple[str, str | None, str | None, object, object]]:
    """Each tracking alert: its type, party, seat, and the projection beside the poll."""
    return [
        (
            a.type.value,
            a.party,
            a.constituency_name,
            a.figures["projected_seats"],
            a.figures["exit_poll_seats"],
        )
        for a in alerts
        if a.type in TRACKED_TYPES
    ]


def test_a_party_departs_beyond_the_distance_and_is_back_only_within_the_nearer_line() -> None:
    rule = hand_tracking()  # away beyond 3, back within 1
    poll = {"Lab": 6, "Con": 4}
    assert departed({"Lab": 3, "Con": 7}, poll, frozenset(), rule) == frozenset()  # 3 is not > 3
    assert departed({"Lab": 2, "Con": 8}, poll, frozenset(), rule) == {"Lab", "Con"}  # 4 > 3
    # Two off: not far enough to depart, not near enough to come back.
    assert departed({"Lab": 4, "Con": 6}, poll, frozenset(), rule) == frozenset()
    assert departed({"Lab": 4, "Con": 6}, poll, frozenset({"Lab", "Con"}), rule) == {"Lab", "Con"}
    assert departed({"Lab": 7, "Con": 3}, poll, frozenset({"Lab", "Con"}), rule) == frozenset()


def test_the_major_parties_are_those_the_poll_names_with_enough_seats_or_those_listed() -> None:
    poll = build_night(DATA_DIR).exit_poll
    projecting = Projecting(Baseline.of(HAND))
    # 2024: Lab 410, Con 131, LD 61, RUK 13, SNP 10, PC 4, Green 2, Others 19.
    assert Tracking(projecting).polled(poll) == {
        "Lab": 410,
        "Con": 131,
        "LD": 61,
        "RUK": 13,
        "SNP": 10,
    }
    assert set(Tracking(projecting, min_poll_seats=50).polled(poll)) == {"Lab", "Con", "LD"}
    # Listed parties win over the rule; one the poll does not name is compared with nothing,
    # and Others, a lump of parties, is never one.
    listed = Tracking(projecting, parties=("Green", "Con", "Others", "Workers"))
    assert listed.polled(poll) == {"Green": 2, "Con": 131}


def test_the_hand_made_night_departs_comes_back_and_departs_again_at_the_seats_worked_out() -> None:
    story = NightStory(HAND, tracking=hand_tracking())
    story.set_exit_poll(hand_poll())
    alerts = walk(story, hand_steps())
    assert tracked(alerts) == [
        # S10 (0): one seat with figures, fewer than 2: not compared.
        # S09 (0): no swing, all ten Con: Con 10 v 4, Lab 0 v 6, six off each.
        ("projection_departs_exit_poll", "Con", "S09", 10, 4),
        ("projection_departs_exit_poll", "Lab", "S09", 0, 6),
        # S08 (11): mean swing 11/3 = 3.67, S01-S03 go Lab: Lab 3 + S08 = 4, Con 6. Two off:
        # still away (back only within 1), so nothing is told.
        # S07 (10): mean 21/4 = 5.25, S01-S05 go Lab: Lab 5 + S08 + S07 = 7, Con 3. One off.
        ("projection_back_in_line", "Con", "S07", 3, 4),
        ("projection_back_in_line", "Lab", "S07", 7, 6),
        # S06 (-20): mean 1/5 = 0.2, nothing goes Lab: Lab 2 (S07, S08), Con 8. Four off.
        ("projection_departs_exit_poll", "Con", "S06", 8, 4),
        ("projection_departs_exit_poll", "Lab", "S06", 2, 6),
    ]
    [first_con, _, back_con, _, again_con, _] = [a for a in alerts if a.type in TRACKED_TYPES]
    root = fact_id(ELECTION, TRACKING, None, "Con")
    assert first_con.alert_id == root
    assert back_con.alert_id == alert_id(root, "back", 0)
    assert again_con.alert_id == alert_id(root, "again", 1)
    # Each is news of its own, for the newsroom alone, in the worker's mode.
    assert all(not a.supersedes for a in (first_con, back_con, again_con))
    assert {a.audience for a in alerts if a.type in TRACKED_TYPES} == {"newsroom"}
    assert {a.rehearsal for a in alerts} == {True}
    assert first_con.priority.value == "high" and back_con.priority.value == "normal"
    assert (
        first_con.headline
        == "Projection departs from exit poll: Conservative 10 projected, exit poll 4"
    )
    assert (
        back_con.headline
        == "Projection back in line with exit poll: Conservative 3 projected, exit poll 4"
    )
    assert back_con.body == (
        "With 4 of 10 seats declared with figures, the projection gives Conservative 3 seats, "
        "1 fewer than the exit poll's 4: within 1 seats again. After S07, declared at 23:40 BST."
    )
    assert back_con.figures["difference"] == -1 and back_con.figures["seats_declared"] == 4
    # The national moments are the public's, as before.
    assert {a.audience for a in alerts if a.type not in TRACKED_TYPES} == {"public"}


def test_nothing_is_compared_before_enough_seats_have_figures() -> None:
    story = NightStory(HAND, tracking=hand_tracking(min_declared=3))
    story.set_exit_poll(hand_poll())
    # The two no-swing seats alone are never compared: from S08 on the projection is at
    # most two off until S06 moves it four.
    assert [(t, p, seat) for t, p, seat, _, _ in tracked(walk(story, hand_steps()))] == [
        ("projection_departs_exit_poll", "Con", "S06"),
        ("projection_departs_exit_poll", "Lab", "S06"),
    ]


def test_seats_declared_before_the_exit_poll_in_the_nights_time_are_not_compared_with_it() -> None:
    story = NightStory(HAND, tracking=hand_tracking())
    story.set_exit_poll(hand_poll(dt.datetime(2024, 7, 4, 23, 25, tzinfo=BST)))
    # S10 and S09 declared before the poll (23:25); S08 and S07 leave it two and one off.
    assert [(t, p, seat) for t, p, seat, _, _ in tracked(walk(story, hand_steps()))] == [
        ("projection_departs_exit_poll", "Con", "S06"),
        ("projection_departs_exit_poll", "Lab", "S06"),
    ]


def test_an_exit_poll_read_after_the_seats_tracks_them_as_if_read_first() -> None:
    steps = hand_steps()
    in_order = NightStory(HAND, tracking=hand_tracking())
    in_order.set_exit_poll(hand_poll())
    expected = walk(in_order, steps)
    late = NightStory(HAND, tracking=hand_tracking())
    assert tracked(walk(late, steps)) == []
    late.set_exit_poll(hand_poll())
    now = told_alerts(late, steps)
    assert tracked(now) == tracked(expected)
    assert [a.alert_id for a in now] == [a.alert_id for a in expected if a.type in TRACKED_TYPES]


def test_a_departure_a_late_seat_undoes_is_withdrawn_for_the_newsroom() -> None:
    story = NightStory(HAND, tracking=hand_tracking())
    story.set_exit_poll(hand_poll())
    # S10 and S09 as on the night: both parties depart at S09, and are told.
    early = hand_steps([(10, 0, 10), (9, 0, 20)])
    assert len(tracked(walk(story, early))) == 2
    # S08 (11 to Lab), sent late, declared at 23:15, before S09. In its place: at S08 the
    # mean is 5.5, S01-S05 go Lab: Lab 6, Con 4; at S09 it is 3.67: Lab 4, Con 6, two off,
    # not enough to depart. The departure never happened.
    late = hand_step(8, 11, 15, sequence=3)
    story.add(late.step)
    alerts = told_alerts(story, [*early, late])
    assert [(a.type, a.replaces_type, a.party) for a in alerts] == [
        (AlertType.RETRACTED, TRACKING, "Con"),
        (AlertType.RETRACTED, TRACKING, "Lab"),
    ]
    con = alerts[0]
    assert con.audience == "newsroom" and con.rehearsal
    assert con.supersedes == [fact_id(ELECTION, TRACKING, None, "Con")]
    assert con.headline == "Withdrawn: Conservative: projection departs exit poll"


# --- the point projection, kept seat by seat ---------------------------------------------------


@cache
def the_night() -> Night:
    return build_night(DATA_DIR)


@cache
def night_results() -> tuple[SeatResult, ...]:
    register = the_night().register
    return tuple(
        seat_result(d, register.constituencies[d.constituency_id], n)
        for n, d in enumerate(the_night().declarations, start=1)
    )


@pytest.mark.parametrize("model", ["regional", "uniform"])
def test_the_running_projection_is_the_projections_central_figure(model: Model) -> None:
    baseline = Baseline.of(the_night().register)
    running = RunningProjection(Projecting(baseline, model=model))
    seats = [declared_seat(result) for result in night_results()]
    assert running.seats() == {}
    for n, seat in enumerate(seats, start=1):
        running.put(seat)
        if n % 25 == 0 or n in (1, 8, 9, 650):
            projection = project(baseline, seats[:n], model=model, resamples=0)
            assert projection is not None
            central = {p.party: p.seats for p in projection.parties if p.seats}
            assert running.seats() == central, n
            assert running.seats_with_figures == projection.seats_with_figures
    # A seat put in again replaces itself: a rush, then its result.
    again = RunningProjection(Projecting(baseline, model=model))
    first = seats[0]
    again.put(DeclaredSeat(first.ons_id, "Con", {}))
    assert again.seats() == {} and again.seats_with_figures == 0
    again.put(first)
    fresh = RunningProjection(Projecting(baseline, model=model))
    fresh.put(first)
    assert again.seats() == fresh.seats()


# --- the 2024 night, in any batching -----------------------------------------------------------

PARTITIONS = 4


def night_changes() -> list[tuple[int, Change]]:
    """The exit poll and the 650 results as change-log entries, each with the partition its
    message would be read from (the exit poll's and each seat's by key), in the night's order."""
    night = the_night()
    register = night.register
    poll = Change(sequence=0, result=None, previous=None, delta={}, exit_poll=night.exit_poll)
    changes = [(0, poll)]
    for result, declaration in zip(night_results(), night.declarations, strict=True):
        ref = register.constituencies[declaration.constituency_id]
        sent_ms = round(declaration.declared_at.timestamp() * 1000)
        change = Change(
            sequence=0,
            result=result,
            previous=None,
            delta=dict(seat_contribution(declaration, ref)),
            sent_ms=sent_ms,
            constituency_id=ref.ons_id,
        )
        changes.append((sum(map(ord, ref.ons_id)) % PARTITIONS, change))
    return changes


@cache
def watchlist() -> Watchlist:
    return load_watchlist(DATA_DIR / "watchlist.csv")


@dataclass
class Publishing:
    """The publisher's rules without Redis or Kafka: changes read in batches, the story fed
    up to the watermark, the moments told once it passes them."""

    telling: Telling
    settings: Settings
    outputs: list[tuple[str, bytes]]

    @classmethod
    def new(cls, settings: Settings) -> Publishing:
        register = the_night().register
        tracking = settings.exit_poll_tracking(settings.projecting(register))
        return cls(Telling(NightStory(register, tracking=tracking)), settings, [])

    async def read(self, batch: Sequence[Change], mark: EventKey | None) -> None:
        register = the_night().register
        policy = self.settings.alert_policy()
        first = self.telling.read_upto + 1
        changes = [replace(change, sequence=first + i) for i, change in enumerate(batch)]
        for _, outputs in tell(self.telling, changes, register, watchlist(), policy):
            self.outputs += [
                (o.topic, o.value) for o in outputs if o.output_id.startswith("alert:")
            ]
        into_story(self.telling, mark)
        results = {c.sequence: c.result for c in changes if c.result is not None}
        moments, _ = await tell_moments(self.telling, mark, results, self.results_of, policy)
        self.outputs += [(o.topic, o.value) for o in moments]

    async def results_of(self, sequences: set[int]) -> dict[int, SeatResult]:
        by_key = {r.constituency_id: r for r in night_results()}
        return {
            step.sequence: by_key[step.ons_id]
            for step in self.telling.story.steps
            if step.sequence in sequences
        }

    def alerts(self, topic: str) -> list[Alert]:
        return [Alert.model_validate_json(value) for t, value in self.outputs if t == topic]


def arrivals(batch_of: dict[int, int], seed: int) -> Iterator[tuple[list[Change], EventKey | None]]:
    """The night as workers read it: each partition in its own order, `batch_of[p]` messages
    at a time, partitions taking turns at random; with each batch, the watermark after it."""
    queues: dict[int, list[Change]] = {p: [] for p in range(PARTITIONS)}
    for partition, change in night_changes():
        queues[partition].append(change)
    read = dict.fromkeys(queues, 0)
    clock: dict[int, EventKey | None] = dict.fromkeys(queues)
    rng = random.Random(seed)
    while any(read[p] < len(queues[p]) for p in queues):
        partition = rng.choice([p for p in queues if read[p] < len(queues[p])])
        taken = queues[partition][read[partition] : read[partition] + batch_of[partition]]
        read[partition] += len(taken)
        clock[partition] = taken[-1].key
        mark = watermark(PartitionProgress(read[p] - 1, len(queues[p]), clock[p]) for p in queues)
        yield taken, mark


async def publish(batch_of: dict[int, int], seed: int, settings: Settings) -> Publishing:
    publishing = Publishing.new(settings)
    for batch, mark in arrivals(batch_of, seed):
        await publishing.read(batch, mark)
    return publishing


@cache
def the_night_in_order() -> list[Alert]:
    return tracking_alerts_of_the_night(Settings())


def test_the_2024_night_departs_at_100_seats_and_comes_back_party_by_party() -> None:
    """What `python -m scripts.alerts_of_the_night` prints for the newsroom."""
    assert [
        (a.type.value, a.party, a.figures["seats_with_figures"], a.figures["projected_seats"])
        for a in the_night_in_order()
    ] == [
        ("projection_departs_exit_poll", "Con", 100, 233),  # exit poll 131
        ("projection_departs_exit_poll", "LD", 100, 33),  # 61
        ("projection_departs_exit_poll", "Lab", 100, 308),  # 410
        ("projection_departs_exit_poll", "SNP", 100, 51),  # 10
        ("projection_back_in_line", "SNP", 165, 9),
        ("projection_back_in_line", "LD", 171, 48),
        ("projection_back_in_line", "Lab", 558, 395),
        ("projection_back_in_line", "Con", 582, 146),
    ]
    assert {a.audience for a in the_night_in_order()} == {"newsroom"}


BATCHINGS = {
    "one message at a time": ({p: 1 for p in range(PARTITIONS)}, 1),
    "a rehearsal at full speed": ({p: 200 for p in range(PARTITIONS)}, 2),
    "two workers, unevenly": ({0: 30, 1: 30, 2: 7, 3: 50}, 3),
}


@pytest.mark.parametrize("batching", list(BATCHINGS))
async def test_every_batching_tells_the_same_tracking_alerts_at_the_same_seats(
    batching: str,
) -> None:
    batch_of, seed = BATCHINGS[batching]
    publishing = await publish(batch_of, seed, Settings())
    newsroom = publishing.alerts("newsroom")
    assert [a.alert_id for a in newsroom] == [a.alert_id for a in the_night_in_order()]
    assert [a.constituency_id for a in newsroom] == [
        a.constituency_id for a in the_night_in_order()
    ]
    # For the newsroom alone: none of them on the alerts topic, nothing amended on a clean feed.
    public = publishing.alerts("alerts")
    assert not [a for a in public if a.type in TRACKED_TYPES or a.audience == "newsroom"]
    assert not [a for a in public + newsroom if a.type in (AlertType.AMENDED, AlertType.RETRACTED)]


async def test_a_publisher_taking_over_mid_night_tells_the_rest_and_nothing_twice() -> None:
    settings = Settings()
    first = Publishing.new(settings)
    night = list(arrivals({p: 25 for p in range(PARTITIONS)}, 4))
    for batch, mark in night[: len(night) // 2]:
        await first.read(batch, mark)
    # The next publisher recalls the night from the change log and the moments told.
    register = the_night().register
    story = NightStory(register, dict(first.telling.story.told), first.telling.story.tracking)
    second = Publishing(Telling(story), settings, [])
    recalled = first.telling.story.steps + first.telling.inbox
    second.telling.story.set_exit_poll(the_night().exit_poll)
    for step in sorted(recalled, key=lambda s: s.key):
        second.telling.story.add(step)
    second.telling.read_upto = first.telling.read_upto
    for batch, mark in night[len(night) // 2 :]:
        await second.read(batch, mark)
    told = first.alerts("newsroom") + second.alerts("newsroom")
    assert [a.alert_id for a in told] == [a.alert_id for a in the_night_in_order()]


async def test_the_audience_setting_puts_them_on_the_alerts_topic_instead() -> None:
    publishing = await publish(
        {p: 200 for p in range(PARTITIONS)}, 2, Settings(exit_poll_tracking_audience="public")
    )
    assert publishing.alerts("newsroom") == []
    public = [a for a in publishing.alerts("alerts") if a.type in TRACKED_TYPES]
    assert [a.alert_id for a in public] == [a.alert_id for a in the_night_in_order()]


def test_a_seat_sent_late_moves_the_departures_to_it_with_amendments_for_the_newsroom() -> None:
    register = the_night().register
    settings = Settings()
    story = NightStory(
        register, tracking=settings.exit_poll_tracking(settings.projecting(register))
    )
    story.set_exit_poll(the_night().exit_poll)
    results = {n: r for n, r in enumerate(night_results(), start=1)}
    steps = [
        StoryStep.of_change(
            event_key(r.declared_at, r.constituency_name, r.constituency_id, r.revision),
            n,
            dict(seat_contribution(d, register.constituencies[d.constituency_id])),
            seat=declared_seat(r),
        )
        for (n, r), d in zip(results.items(), the_night().declarations, strict=True)
    ]
    hundredth = steps[99]
    alerts: list[Alert] = []
    for step in steps[:200]:
        if step is not hundredth:
            story.add(step)
            alerts += story.alerts(story.tell(None), results, POLICY)
    # Without it, the 100th seat with figures is the 101st declared: they depart there.
    departures = [a for a in alerts if a.type is TRACKING]
    assert {a.constituency_id for a in departures} == {steps[100].ons_id}
    story.add(hundredth)
    amended = story.alerts(story.tell(None), results, POLICY)
    moved = [a for a in amended if a.replaces_type is TRACKING]
    assert {a.party for a in moved} == {"Con", "LD", "Lab", "SNP"}
    assert {(a.type, a.constituency_id, a.audience) for a in moved} == {
        (AlertType.AMENDED, hundredth.ons_id, "newsroom")
    }
    assert [a.supersedes for a in moved] == [[d.alert_id] for d in departures]
    assert all(a.headline.startswith("Amended: Projection departs from exit poll") for a in moved)


# --- never to app users ----------------------------------------------------------------------

NS = app.context.namespace


async def hand_night_outputs() -> list[Output]:
    """The hand-made night's moments as the publisher queues them."""
    steps = hand_steps()
    telling = Telling(NightStory(HAND, tracking=hand_tracking()))
    telling.story.set_exit_poll(hand_poll())
    for step in steps:
        telling.story.add(step.step)
    results = {s.step.sequence: s.result for s in steps}

    async def unread(sequences: set[int]) -> dict[int, SeatResult]:
        raise AssertionError(f"results at hand: {sorted(sequences)}")

    outputs, _ = await tell_moments(telling, None, results, unread, POLICY)
    return outputs


async def test_newsroom_alerts_reach_no_webhook_event_stream_or_alerts_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = await hand_night_outputs()
    newsroom = [o for o in outputs if o.topic == "newsroom"]
    public = [o for o in outputs if o.topic == "alerts"]
    assert len(newsroom) == 6 and public  # six tracking alerts; the first declaration...
    assert {Alert.model_validate_json(o.value).audience for o in newsroom} == {"newsroom"}
    assert {Alert.model_validate_json(o.value).audience for o in public} == {"public"}
    server = fakeredis.FakeServer()
    outbox = Outbox(fakeredis.FakeAsyncRedis(server=server), NS)
    await announce(outbox, 1, outputs)
    await outbox.mark_published(len(outputs))
    public_ids = [Alert.model_validate_json(o.value).alert_id for o in public]

    # Webhooks: every alert to a subscriber that takes rehearsals (the night is one), none
    # of the newsroom's.
    receiver = Receiver(lambda key, attempt: 204)
    hook = await serve(receiver)
    try:
        async with aiohttp.ClientSession() as session:
            url = str(hook.make_url("/hook"))
            subscriber = Subscriber(url, outbox.redis, NS, FAST, session, takes_rehearsals=True)
            await subscriber.step(block_ms=10)
    finally:
        await hook.close()
    assert receiver.acknowledged == public_ids

    # Event streams: the alerts of every topic a client can ask for, rehearsals included.
    feed = LiveFeed(lambda: fakeredis.FakeAsyncRedis(server=server), NS, 100, block_ms=50)
    async with feed.joined():
        await until(lambda: feed.released == len(outputs))
        stream = feed.stream(0, {"results", "state", "alerts"}, 10, rehearsals=True)
        streamed = await take(stream, len(public))
        await stream.aclose()
    queued = await outbox.read(after=0)
    assert streamed == [q.sequence for q in queued if q.output.topic == "alerts"]

    # The alerts list.
    monkeypatch.setattr(app.context, "outbox", outbox)
    listed = orjson.loads((await get("/api/alerts?rehearsal=1")).body)
    assert [a["alert_id"] for a in listed] == public_ids


def test_a_rebuild_counts_the_newsroom_alerts_on_kafka_as_sent() -> None:
    alert = {"election_id": ELECTION, "message_type": "alert", "alert_id": "t1"}
    feed_check = {"election_id": ELECTION, "message_type": "feed_check"}
    on_kafka = [
        SimpleNamespace(value=orjson.dumps(v), key=None, headers=(), timestamp=0)
        for v in (alert, feed_check)
    ]
    assert outputs_on_kafka("newsroom", on_kafka, ELECTION).ids == ["alert:t1"]


def test_the_settings_of_the_tracking() -> None:
    register = the_night().register
    tracking = Settings().exit_poll_tracking(Settings().projecting(register))
    assert tracking is not None
    assert (tracking.departs_beyond, tracking.back_within, tracking.min_declared) == (20, 15, 100)
    assert (tracking.parties, tracking.min_poll_seats, tracking.audience) == ((), 10, "newsroom")
    off = Settings(exit_poll_tracking_seats=0)
    assert off.exit_poll_tracking(off.projecting(register)) is None
    no_projection = Settings(projection_model="off")
    assert no_projection.exit_poll_tracking(no_projection.projecting(register)) is None
    listed = Settings(exit_poll_tracking_parties=["Lab", "Con"])
    chosen = listed.exit_poll_tracking(listed.projecting(register))
    assert chosen is not None and chosen.parties == ("Lab", "Con")
    with pytest.raises(ValueError, match="BACK_WITHIN_SEATS"):
        Settings(exit_poll_tracking_seats=10, exit_poll_tracking_back_within_seats=11)
