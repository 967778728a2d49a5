"""The night's national moments in declaration time: told in order, amended if late data moves them.

First and last declaration, the majority and the largest party certain are facts about the
order in which seats declared, not about the order their messages arrived in. The story
holds every seat change it was told, in event-time order (streams.event_time), and the
moments that order passes. A change that comes after the changes it precedes is inserted
where it belongs and the night is walked again: a moment now passed at another seat is
amended, one passed only now is told, one no longer passed is withdrawn.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.alert import Alert, AlertType
from schemas.results import SeatResult
from streams import alert_text
from streams.alert_rules.base import (
    AlertPolicy,
    PartySeatCount,
    SeatCount,
    alert_id,
    louder,
    seat_alert,
)
from streams.alert_rules.national import (
    Crossing,
    crossings,
    moment_alert,
    moment_id,
    moment_root_id,
)
from streams.event_time import EventKey, key_time
from streams.reference import Register

# A moment's place in the story: its type and party, then which passing of that line (0 the
# first passing, 1 the first passing back, 2 the second passing...).
Slot = tuple[AlertType, str | None, int]


@dataclass(frozen=True, slots=True)
class StoryStep:
    """One seat change as the moments see it: where it stands in time, and what it moved."""

    key: EventKey
    sequence: int  # the change's entry in the change log, to read its result when needed
    seats: tuple[tuple[str, int], ...]  # party -> change in seats
    declared: int  # change in seats declared

    @classmethod
    def of_change(cls, key: EventKey, sequence: int, delta: Mapping[str, int]) -> StoryStep:
        seats = tuple(
            (name[len("party:") : -len(":seats")], change)
            for name, change in delta.items()
            if name.startswith("party:") and name.endswith(":seats")
        )
        return cls(key, sequence, seats, delta.get("total:declared", 0))

    @property
    def ons_id(self) -> str:
        return self.key[2]

    @property
    def revision(self) -> int:
        return self.key[3]


@dataclass(frozen=True, slots=True)
class Moment:
    crossing: Crossing
    step: StoryStep
    state: SeatCount  # the nation just after the step
    passing: int  # which passing of the line this is (see Slot)

    @property
    def slot(self) -> Slot:
        return (self.crossing.alert_type, self.crossing.party, self.passing)


@dataclass(frozen=True, slots=True)
class Told:
    moment: Moment
    alert_id: str


@dataclass(frozen=True, slots=True)
class Moved:
    before: Moment
    now: Moment
    previous_id: str  # the id the moment was last told under
    alert_id: str


@dataclass(frozen=True, slots=True)
class Withdrawn:
    before: Moment
    previous_id: str


@dataclass(frozen=True)
class StoryDiff:
    """What one change did to the story."""

    told: list[Told] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    withdrawn: list[Withdrawn] = field(default_factory=list)

    @property
    def sequences_needed(self) -> set[int]:
        """The changes whose results the alerts name."""
        return {t.moment.step.sequence for t in self.told} | {
            m.now.step.sequence for m in self.moved
        }


class NightStory:
    """The seat changes told so far in event-time order, and the moments they pass."""

    def __init__(self, register: Register) -> None:
        self.register = register
        self.steps: list[StoryStep] = []
        self.moments: dict[Slot, Moment] = {}
        self.told_ids: dict[Slot, str] = {}
        self._seats: dict[str, int] = {}
        self._declared = 0
        self._passings: Counter[tuple[AlertType, str | None]] = Counter()
        self._now = self._count()

    @property
    def frontier(self) -> EventKey | None:
        """The latest key told: a change keyed before it arrived late."""
        return self.steps[-1].key if self.steps else None

    @property
    def now(self) -> SeatCount:
        """The nation after every change told, as the moments read it."""
        return self._now

    def add(self, step: StoryStep) -> StoryDiff:
        if not self.steps or step.key >= self.steps[-1].key:
            self.steps.append(step)
            before = self._now
            self._apply(step)
            told = []
            for crossing in crossings(before, self._now, self.register):
                moment = self._moment(crossing, step, self._now)
                ident = self._told_id(moment)
                self.moments[moment.slot] = moment
                self.told_ids[moment.slot] = ident
                told.append(Told(moment, ident))
            return StoryDiff(told=told)
        at = bisect.bisect_right(self.steps, step.key, key=lambda s: s.key)
        self.steps.insert(at, step)
        return self._retell(self._walk(at))

    def _count(self) -> SeatCount:
        return SeatCount(
            sequence=len(self.steps),
            total_seats=self.register.total_seats,
            seats_declared=self._declared,
            parties=tuple(PartySeatCount(party, n) for party, n in self._seats.items()),
        )

    def _apply(self, step: StoryStep) -> None:
        self._apply_seats(step)
        self._now = self._count()

    def _apply_seats(self, step: StoryStep) -> None:
        for party, change in step.seats:
            seats = self._seats.get(party, 0) + change
            if seats:
                self._seats[party] = seats
            else:
                self._seats.pop(party, None)
        self._declared += step.declared

    def _moment(self, crossing: Crossing, step: StoryStep, state: SeatCount) -> Moment:
        line = (crossing.alert_type, crossing.party)
        passing = self._passings[line]
        self._passings[line] += 1
        return Moment(crossing, step, state, passing)

    def _told_id(self, moment: Moment) -> str:
        return moment_id(
            self.register.election_id,
            moment.crossing,
            moment.step.ons_id,
            moment.step.revision,
            moment.passing // 2,
        )

    def _walk(self, at: int) -> dict[Slot, Moment]:
        """Every moment of the night, in the order the steps now stand, when step `at` has
        just been put in its place: the moments before it stand, the rest are walked again."""
        kept = {
            slot: moment
            for slot, moment in self.moments.items()
            if moment.step.key < self.steps[at].key
        }
        self._seats, self._declared = {}, 0
        self._passings = Counter((slot[0], slot[1]) for slot in kept)
        steps = self.steps
        self.steps = []
        for step in steps[:at]:
            self.steps.append(step)
            self._apply_seats(step)
        self._now = self._count()
        moments = dict(kept)
        for step in steps[at:]:
            self.steps.append(step)
            before = self._now
            self._apply(step)
            for crossing in crossings(before, self._now, self.register):
                moment = self._moment(crossing, step, self._now)
                moments[moment.slot] = moment
        return moments

    def _retell(self, moments: dict[Slot, Moment]) -> StoryDiff:
        diff = StoryDiff()
        for slot, moment in moments.items():
            before = self.moments.get(slot)
            if before is None:
                ident = self._told_id(moment)
                diff.told.append(Told(moment, ident))
                self.told_ids[slot] = ident
            elif before.step.key != moment.step.key:
                previous = self.told_ids.get(slot) or self._told_id(before)
                root = moment_root_id(self.register.election_id, moment.crossing)
                ident = alert_id(root, "moved", moment.step.ons_id, moment.step.revision, previous)
                diff.moved.append(Moved(before, moment, previous, ident))
                self.told_ids[slot] = ident
        for slot, before in self.moments.items():
            if slot not in moments:
                previous = self.told_ids.pop(slot, "") or self._told_id(before)
                diff.withdrawn.append(Withdrawn(before, previous))
        self.moments = moments
        return diff

    def alerts(
        self,
        diff: StoryDiff,
        results: Mapping[int, SeatResult],
        trigger: SeatResult,
        policy: AlertPolicy,
    ) -> list[Alert]:
        """The alerts telling a change to the story; `results` holds the result of every
        change in `diff.sequences_needed`, `trigger` is the change that made the diff."""
        register = self.register
        alerts = [
            moment_alert(
                told.moment.crossing,
                results[told.moment.step.sequence],
                told.moment.state,
                register,
                policy,
                told.moment.passing // 2,
            )
            for told in diff.told
        ]
        for moved in diff.moved:
            now = moved.now
            told = moment_alert(
                now.crossing,
                results[now.step.sequence],
                now.state,
                register,
                policy,
                now.passing // 2,
            )
            alerts.append(_amended(told, moved, trigger, policy))
        for withdrawn in diff.withdrawn:
            alerts.append(_withdrawn(withdrawn, trigger, self._now, policy))
        return alerts


def _amended(told: Alert, moved: Moved, trigger: SeatResult, policy: AlertPolicy) -> Alert:
    """The moment told again at the seat that now passes it, in place of the earlier alert."""
    before, now = moved.before.step, moved.now.step
    was = f"{before.key[1]} at {alert_text.clock(key_time(before.key))}"
    is_now = f"{now.key[1]} at {alert_text.clock(key_time(now.key))}"
    text = alert_text.amended_text(
        alert_text.AlertText(told.headline, told.body),
        [f"the seat that made it {was} → {is_now}, as seats declared"],
        trigger,
    )
    root = moment_root_id(trigger.election_id, moved.now.crossing)
    return told.model_copy(
        update={
            "alert_id": moved.alert_id,
            "type": AlertType.AMENDED,
            "replaces_type": told.replaces_type or told.type,
            # Another seat is named: as loud as the original, so all who heard it hear this.
            "priority": told.priority,
            "headline": text.headline,
            "body": text.body,
            "supersedes": list(dict.fromkeys([root, moved.previous_id])),
        }
    )


def _withdrawn(
    withdrawn: Withdrawn, trigger: SeatResult, state: SeatCount, policy: AlertPolicy
) -> Alert:
    """A moment that no longer happened at all, once a late change took its place."""
    crossing = withdrawn.before.crossing
    what = crossing.alert_type.value.replace("_", " ")
    if crossing.party:
        what = f"{crossing.party}: {what}"
    text = alert_text.retracted_text(
        what, f"seats declared {state.seats_declared} of {state.total_seats}", trigger
    )
    root = moment_root_id(trigger.election_id, crossing)
    alert = seat_alert(
        alert_id=alert_id(
            withdrawn.previous_id, "withdrawn", trigger.constituency_id, trigger.revision
        ),
        alert_type=AlertType.RETRACTED,
        policy=policy,
        result=trigger,
        text=text,
        figures={"seats_declared": state.seats_declared, "total_seats": state.total_seats},
        party=crossing.party,
    )
    return alert.model_copy(
        update={
            # As loud as what it withdraws, or the people told are never untold.
            "priority": louder(
                policy.priority(AlertType.RETRACTED), policy.priority(crossing.alert_type)
            ),
            "supersedes": list(dict.fromkeys([root, withdrawn.previous_id])),
            "replaces_type": crossing.alert_type if crossing.holds else AlertType.RETRACTED,
        }
    )
