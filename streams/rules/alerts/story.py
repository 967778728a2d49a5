"""The night's national moments in declaration time: told in order, amended if late data moves them.

First and last declaration, the majority and the largest party certain are facts about the
order in which seats declared, not about the order their messages arrived in. The story
holds every seat change it was told, in event-time order (streams.rules.event_time), and the
moments that order passes. A change that comes after the changes it precedes is inserted
where it belongs and the night is walked again: a moment now passed at another seat is
amended, one passed only now is told, one no longer passed is withdrawn. With an exit poll
and the projection's settings (streams.rules.alerts.tracking), the projection departing from
the poll for a major party, and coming back, are moments of the story too.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.alert import Alert, AlertType, Audience
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import (
    AlertPolicy,
    PartySeatCount,
    SeatCount,
    alert_id,
    louder,
    party_names,
)
from streams.rules.alerts.national import (
    Crossing,
    crossings,
    moment_alert,
    moment_id,
    moment_root_id,
)
from streams.rules.alerts.tracking import (
    TRACKING,
    ExitPollTracker,
    Tracking,
    TrackingPoint,
    told_type,
    tracking_alert,
    tracking_id,
)
from streams.rules.event_time import EventKey, key_from_text, key_text, key_time
from streams.rules.projection import DeclaredSeat
from streams.rules.reference import Register

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
    sent_ms: int = 0  # the Kafka timestamp of its message: how far the watermark must reach
    seat: DeclaredSeat | None = None  # the seat after it, as the projection reads it

    @classmethod
    def of_change(
        cls,
        key: EventKey,
        sequence: int,
        delta: Mapping[str, int],
        sent_ms: int = 0,
        seat: DeclaredSeat | None = None,
    ) -> StoryStep:
        seats = tuple(
            (name[len("party:") : -len(":seats")], change)
            for name, change in delta.items()
            if name.startswith("party:") and name.endswith(":seats")
        )
        return cls(key, sequence, seats, delta.get("total:declared", 0), sent_ms, seat)

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
    tracking: TrackingPoint | None = None  # the projection beside the poll, for tracking

    @property
    def slot(self) -> Slot:
        return (self.crossing.alert_type, self.crossing.party, self.passing)


@dataclass(frozen=True, slots=True)
class ToldMoment:
    """What the alerts topic says of a moment: the id it was last told under, and where."""

    alert_id: str
    key: EventKey


@dataclass(frozen=True, slots=True)
class Told:
    moment: Moment
    alert_id: str


@dataclass(frozen=True, slots=True)
class Moved:
    before: ToldMoment
    now: Moment
    alert_id: str


@dataclass(frozen=True, slots=True)
class Withdrawn:
    slot: Slot
    before: ToldMoment


@dataclass(frozen=True)
class StoryDiff:
    """What to tell of the moments: new ones, ones now passed elsewhere, ones gone."""

    told: list[Told] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    withdrawn: list[Withdrawn] = field(default_factory=list)

    @property
    def sequences_needed(self) -> set[int]:
        """The changes whose results the alerts name."""
        return {t.moment.step.sequence for t in self.told} | {
            m.now.step.sequence for m in self.moved
        }

    def __bool__(self) -> bool:
        return bool(self.told or self.moved or self.withdrawn)


class NightStory:
    """Every seat change in event-time order, the moments they pass, and what was told of them.

    Moments are told only once the watermark has passed them (`tell`): until then no message
    still unread can come before them, so a feed in time order is never amended however late
    it is read. One told and then moved by a change sent late is amended; one gone, withdrawn.
    """

    def __init__(
        self,
        register: Register,
        told: Mapping[Slot, ToldMoment] | None = None,
        tracking: Tracking | None = None,
    ) -> None:
        self.register = register
        self.tracking = tracking
        self._tracker = ExitPollTracker(tracking) if tracking is not None else None
        self.steps: list[StoryStep] = []
        self._moments: dict[Slot, Moment] = {}
        self.told: dict[Slot, ToldMoment] = dict(told or {})
        # The first step put in before others since the moments were last walked: a backlog
        # read from several partitions arrives a little out of order, and walking the night
        # again once per batch, not once per change, keeps that linear.
        self._unwalked_from: int | None = None
        self._seats: dict[str, int] = {}
        self._declared = 0
        self._passings: Counter[tuple[AlertType, str | None]] = Counter()
        self._now = self._count()

    @property
    def moments(self) -> dict[Slot, Moment]:
        """Every moment of the night as the steps now stand."""
        if self._unwalked_from is not None:
            self._moments = self._walk(self._unwalked_from)
            self._unwalked_from = None
        return self._moments

    @property
    def now(self) -> SeatCount:
        """The nation after every change, in event-time order, as the moments read it."""
        self.moments  # noqa: B018  (walks what is left to walk)
        return self._now

    def set_exit_poll(self, poll: ExitPoll) -> None:
        """The exit poll the projection is tracked against: a poll read after seats walks
        the night again, as every step after the poll's time compares with it."""
        tracker = self._tracker
        if tracker is None or tracker.poll == poll:
            return
        tracker.poll = poll
        if self.steps:
            self._unwalked_from = 0

    def add(self, step: StoryStep) -> None:
        if self._unwalked_from is None and (not self.steps or step.key >= self.steps[-1].key):
            self.steps.append(step)
            for moment in self._step(step):
                self._moments[moment.slot] = moment
            return
        at = bisect.bisect_right(self.steps, step.key, key=lambda s: s.key)
        self.steps.insert(at, step)
        if self._unwalked_from is None or at < self._unwalked_from:
            self._unwalked_from = at

    def untold(self) -> list[Moment]:
        """Moments whose telling is due or out of date, in event-time order."""
        return sorted(
            (
                moment
                for slot, moment in self.moments.items()
                if (told := self.told.get(slot)) is None or told.key != moment.step.key
            ),
            key=lambda moment: moment.step.key,
        )

    @property
    def pending(self) -> bool:
        return bool(self.untold()) or any(slot not in self.moments for slot in self.told)

    def tell(self, mark: EventKey | None, missing_from: EventKey | None = None) -> StoryDiff:
        """What to tell now, with the watermark at `mark` (None: nothing held back) and steps
        from `missing_from` on perhaps not in the story yet."""
        diff = StoryDiff()
        for moment in self.untold():
            if (mark is not None and moment.step.key > mark) or (
                missing_from is not None and moment.step.key >= missing_from
            ):
                break
            slot = moment.slot
            before = self.told.get(slot)
            if before is None:
                ident = self._told_id(moment)
                diff.told.append(Told(moment, ident))
            else:
                root = moment_root_id(self.register.election_id, moment.crossing)
                ident = alert_id(
                    root, "moved", moment.step.ons_id, moment.step.revision, before.alert_id
                )
                diff.moved.append(Moved(before, moment, ident))
            self.told[slot] = ToldMoment(ident, moment.step.key)
        for slot in [slot for slot in self.told if slot not in self.moments]:
            diff.withdrawn.append(Withdrawn(slot, self.told.pop(slot)))
        return diff

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

    def _step(self, step: StoryStep) -> list[Moment]:
        """Apply a step put last in the story: the moments it passes."""
        before = self._now
        self._apply(step)
        moments = [
            self._moment(crossing, step, self._now)
            for crossing in crossings(before, self._now, self.register)
        ]
        if self._tracker is not None:
            self._tracker.take(step.ons_id, step.sequence, step.seat)
            found, point = self._tracker.crossings(step.key)
            moments += [self._moment(crossing, step, self._now, point) for crossing in found]
        return moments

    def _moment(
        self,
        crossing: Crossing,
        step: StoryStep,
        state: SeatCount,
        tracking: TrackingPoint | None = None,
    ) -> Moment:
        line = (crossing.alert_type, crossing.party)
        passing = self._passings[line]
        self._passings[line] += 1
        return Moment(crossing, step, state, passing, tracking)

    def _told_id(self, moment: Moment) -> str:
        if moment.crossing.alert_type is TRACKING:
            return tracking_id(self.register.election_id, moment.crossing, moment.passing // 2)
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
            for slot, moment in self._moments.items()
            if moment.step.key < self.steps[at].key
        }
        self._seats, self._declared = {}, 0
        self._passings = Counter((slot[0], slot[1]) for slot in kept)
        if self._tracker is not None:
            # A party passed its line an odd number of times before the step stands away.
            self._tracker.rewind(
                at,
                frozenset(
                    party
                    for (line, party), passed in self._passings.items()
                    if line is TRACKING and party is not None and passed % 2
                ),
            )
        steps = self.steps
        self.steps = []
        for step in steps[:at]:
            self.steps.append(step)
            self._apply_seats(step)
        self._now = self._count()
        moments = dict(kept)
        for step in steps[at:]:
            self.steps.append(step)
            for moment in self._step(step):
                moments[moment.slot] = moment
        return moments

    def alerts(
        self,
        diff: StoryDiff,
        results: Mapping[int, SeatResult],
        policy: AlertPolicy,
    ) -> list[Alert]:
        """The alerts telling `diff`; `results` holds the result of every change in
        `diff.sequences_needed`."""
        alerts = [self._alert(told.moment, results, policy) for told in diff.told]
        for moved in diff.moved:
            told = self._alert(moved.now, results, policy)
            alerts.append(_amended(told, moved, self._first_id(moved.now.slot)))
        for withdrawn in diff.withdrawn:
            slot = withdrawn.slot
            alerts.append(
                _withdrawn(
                    withdrawn,
                    self.register,
                    self._now,
                    policy,
                    self._first_id(slot),
                    self._audience(slot),
                )
            )
        return alerts

    def _alert(
        self, moment: Moment, results: Mapping[int, SeatResult], policy: AlertPolicy
    ) -> Alert:
        result = results[moment.step.sequence]
        if moment.crossing.alert_type is TRACKING:
            assert self.tracking is not None and moment.tracking is not None
            return tracking_alert(
                moment.crossing,
                result,
                moment.tracking,
                moment.state.seats_declared,
                self.register,
                self.tracking,
                policy,
                moment.passing // 2,
            )
        return moment_alert(
            moment.crossing, result, moment.state, self.register, policy, moment.passing // 2
        )

    def _first_id(self, slot: Slot) -> str:
        """The id a moment's slot was first told under: what amending or withdrawing it
        supersedes. A national moment's line has one (its passings back retract it); each
        departure and return of the tracking is news of its own."""
        alert_type, party, passing = slot
        crossing = Crossing(alert_type, party, passing % 2 == 0)
        if alert_type is TRACKING:
            return tracking_id(self.register.election_id, crossing, passing // 2)
        return moment_root_id(self.register.election_id, crossing)

    def _audience(self, slot: Slot) -> Audience:
        if slot[0] is TRACKING and self.tracking is not None:
            return self.tracking.audience
        return "public"


def slot_text(slot: Slot) -> str:
    alert_type, party, passing = slot
    return f"{alert_type.value}|{party or ''}|{passing}"


def slot_from_text(text: str) -> Slot:
    alert_type, party, passing = text.split("|")
    return (AlertType(alert_type), party or None, int(passing))


def last_declaration_told(records: Mapping[str, str]) -> bool:
    """Whether the records of moments told (as the outbox keeps them, see slot_text) hold the
    night's last declaration: once every seat has declared, the story is whole only then, as
    the moment waits for the watermark after the last change is published."""
    return any(
        told and slot_from_text(slot)[0] is AlertType.LAST_DECLARATION
        for slot, told in records.items()
    )


def told_text(told: ToldMoment) -> str:
    return f"{told.alert_id}|{key_text(told.key)}"


def told_from_text(text: str) -> ToldMoment:
    ident, key = text.split("|", 1)
    return ToldMoment(ident, key_from_text(key))


def _amended(told: Alert, moved: Moved, root: str) -> Alert:
    """The moment told again at the seat that now passes it, in place of the earlier alert."""
    before, now = moved.before.key, moved.now.step.key
    was = f"{before[1]} at {alert_text.clock(key_time(before))}"
    is_now = f"{now[1]} at {alert_text.clock(key_time(now))}"
    text = alert_text.AlertText(
        headline=alert_text.fit(f"Amended: {told.headline}", told.headline),
        body=(
            f"{told.body} This replaces an earlier alert: a result sent late changed the "
            f"order of the night; the seat that made it: {was} → {is_now}."
        ),
    )
    return told.model_copy(
        update={
            "alert_id": moved.alert_id,
            "type": AlertType.AMENDED,
            "replaces_type": told.replaces_type or told.type,
            # Another seat is named: as loud as the original, so all who heard it hear this.
            "priority": told.priority,
            "headline": text.headline,
            "body": text.body,
            "supersedes": list(dict.fromkeys([root, moved.before.alert_id])),
        }
    )


def _withdrawn(
    withdrawn: Withdrawn,
    register: Register,
    state: SeatCount,
    policy: AlertPolicy,
    root: str,
    audience: Audience,
) -> Alert:
    """A moment that no longer happened at all, once a late change took its place."""
    alert_type, party, passing = withdrawn.slot
    crossing = Crossing(alert_type, party, passing % 2 == 0)
    if alert_type is TRACKING:
        replaces = told_type(crossing)
        what = replaces.value.replace("_", " ")
    else:
        replaces = alert_type if crossing.holds else AlertType.RETRACTED
        what = alert_type.value.replace("_", " ")
    if party:
        what = f"{alert_text.party_name(party, party_names(register))}: {what}"
    return Alert(
        alert_id=alert_id(withdrawn.before.alert_id, "withdrawn"),
        election_id=register.election_id,
        rehearsal=policy.rehearsal,
        type=AlertType.RETRACTED,
        # As loud as what it withdraws, or the people told are never untold.
        priority=louder(policy.priority(AlertType.RETRACTED), policy.priority(alert_type)),
        headline=alert_text.fit(f"Withdrawn: {what}", "Withdrawn"),
        body=(
            f"An earlier alert no longer holds: results sent late changed the night "
            f"({state.seats_declared} of {state.total_seats} seats declared)."
        ),
        occurred_at=key_time(withdrawn.before.key),
        party=party,
        figures={"seats_declared": state.seats_declared, "total_seats": state.total_seats},
        supersedes=list(dict.fromkeys([root, withdrawn.before.alert_id])),
        replaces_type=replaces,
        audience=audience,
    )
