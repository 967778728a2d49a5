"""Exit-poll tracking: when the projection moves away from the exit poll for a party, and back.

The projection (streams.rules.projection) is set beside the exit poll after every step of
the night's story, in declaration-time order, so where it departs and where it comes back
are facts of the night, whatever batches the changes were read in. A party departs when its
projected seats are more than `departs_beyond` from the poll's, and is back in line once
within `back_within`: with the two apart, a projection hovering at the edge is not told
back and forth (with one line at 15 seats, the 2024 night told the Liberal Democrats and
then the Conservatives away and back again within two declarations: docs/projection.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.alert import Alert, AlertType, Audience
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import AlertPolicy, alert_id, party_names, seat_alert
from streams.rules.alerts.national import Crossing, moment_root_id
from streams.rules.event_time import EventKey, event_key
from streams.rules.projection import DeclaredSeat, FloatArray, Projecting, RunningProjection
from streams.rules.reference import Register

# The line a tracking moment passes: departing is passing it, coming back is passing it back.
TRACKING = AlertType.PROJECTION_DEPARTS_EXIT_POLL
BACK_IN_LINE = AlertType.PROJECTION_BACK_IN_LINE
# The exit poll's lump of every party it does not name: not a party to track.
OTHERS = "Others"


@dataclass(frozen=True)
class Tracking:
    """How the projection is held against the exit poll (ELECTION_EXIT_POLL_TRACKING_*)."""

    projecting: Projecting
    departs_beyond: int = 20  # seats from the poll's figure: further, the projection departs
    back_within: int = 15  # seats from it: this close again, it is back in line
    parties: tuple[str, ...] = ()  # the parties tracked; none: the poll's major parties
    min_poll_seats: int = 10  # seats the poll must give a party it names to make it major
    min_declared: int = 100  # declared seats with figures before the projection is compared
    audience: Audience = "newsroom"

    def polled(self, poll: ExitPoll) -> dict[str, int]:
        """The parties tracked, with the poll's seats for each: those listed, else every
        party the poll names with at least `min_poll_seats`."""
        named = {p.party: p.seats for p in poll.projections if p.party != OTHERS}
        if self.parties:
            return {party: named[party] for party in self.parties if party in named}
        return {party: seats for party, seats in named.items() if seats >= self.min_poll_seats}


def departed(
    projected: Mapping[str, int],
    polled: Mapping[str, int],
    before: frozenset[str],
    tracking: Tracking,
) -> frozenset[str]:
    """The tracked parties the projection stands away from the poll for: further than
    `departs_beyond`, or, for a party already away (`before`), further than `back_within`."""
    away = set()
    for party, seats in polled.items():
        limit = tracking.back_within if party in before else tracking.departs_beyond
        if abs(projected.get(party, 0) - seats) > limit:
            away.add(party)
    return frozenset(away)


@dataclass(frozen=True, slots=True)
class TrackingPoint:
    """The projection beside the poll just after the step that moved it: what the alert says."""

    projected: tuple[tuple[str, int], ...]  # tracked party -> projected seats
    polled: tuple[tuple[str, int], ...]  # tracked party -> the exit poll's seats
    seats_with_figures: int

    def of(self, party: str) -> tuple[int, int]:
        """The party's projected seats and the poll's."""
        return dict(self.projected).get(party, 0), dict(self.polled).get(party, 0)


@dataclass(frozen=True, slots=True)
class Taken:
    """A seat as the tracked projection has it, and the change-log entry it came from."""

    sequence: int
    seat: DeclaredSeat
    changes: FloatArray


class ExitPollTracker:
    """The projection followed through the story's steps in event-time order, and the
    parties it stands away from the exit poll for."""

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking
        self.poll: ExitPoll | None = None
        self.away: frozenset[str] = frozenset()
        self._projection = RunningProjection(tracking.projecting)
        self._latest: dict[str, Taken] = {}  # ONS id -> the seat as the projection has it
        # What each step taken replaced (None: nothing), in the order taken: when the story
        # walks again from a step put in late, the steps after it are undone, not every
        # step before it done again.
        self._replaced: list[tuple[str, Taken | None] | None] = []

    def take(self, ons_id: str, sequence: int, seat: DeclaredSeat | None) -> None:
        """A seat's step. Its later revision stands over an earlier one, even one dated
        after it (a correction dated earlier than the result it corrects): a seat's changes
        are logged in the order its source revised it. Nothing is kept before the exit poll
        is known: the story walks the night again from its first step once it is."""
        if self.poll is None:
            return
        before = self._latest.get(ons_id)
        if seat is None or (before is not None and sequence < before.sequence):
            self._replaced.append(None)
            return
        self._replaced.append((ons_id, before))
        taken = Taken(sequence, seat, self._projection.changes_of(seat))
        self._latest[ons_id] = taken
        self._projection.put(seat, taken.changes)

    def rewind(self, steps: int, away: frozenset[str]) -> None:
        """Back to just after the first `steps` steps taken, the parties `away` then (the
        story knows them from its moments before that step)."""
        while len(self._replaced) > steps:
            undone = self._replaced.pop()
            if undone is None:
                continue
            ons_id, before = undone
            if before is None:
                del self._latest[ons_id]
                self._projection.remove(ons_id)
            else:
                self._latest[ons_id] = before
                self._projection.put(before.seat, before.changes)
        self.away = away

    def crossings(self, key: EventKey) -> tuple[list[Crossing], TrackingPoint | None]:
        """What the step at `key`, just taken, moved: parties departing (the crossing holds)
        or back in line, with the projection beside the poll. Nothing before the exit poll
        (in the night's time) or before `min_declared` seats with figures."""
        poll = self.poll
        if poll is None or key < event_key(poll.published_at):
            return [], None
        if self._projection.seats_with_figures < self.tracking.min_declared:
            return [], None
        polled = self.tracking.polled(poll)
        if not polled and not self.away:
            return [], None
        projected = self._projection.seats()
        now = departed(projected, polled, self.away, self.tracking)
        moved = sorted(now ^ self.away)
        self.away = now
        if not moved:
            return [], None
        point = TrackingPoint(
            projected=tuple((party, projected.get(party, 0)) for party in sorted(polled)),
            polled=tuple(sorted(polled.items())),
            seats_with_figures=self._projection.seats_with_figures,
        )
        return [Crossing(TRACKING, party, party in now) for party in moved], point


def tracking_id(election_id: str, crossing: Crossing, occurrence: int) -> str:
    """The id of one departure or return of a party: the first departure has the moment's
    root id, later ones and every return their count; no seat, as a late change that moves
    the moment to another seat amends it under an id of its own."""
    assert crossing.party is not None
    root = moment_root_id(election_id, crossing)
    if crossing.holds:
        return root if occurrence == 0 else alert_id(root, "again", occurrence)
    return alert_id(root, "back", occurrence)


def told_type(crossing: Crossing) -> AlertType:
    return TRACKING if crossing.holds else BACK_IN_LINE


def tracking_alert(
    crossing: Crossing,
    result: SeatResult,
    point: TrackingPoint,
    seats_declared: int,
    register: Register,
    tracking: Tracking,
    policy: AlertPolicy,
    occurrence: int,
) -> Alert:
    """The alert telling that the projection departed from the poll for a party, or came
    back, at `result`, with `seats_declared` seats declared just after it."""
    assert crossing.party is not None
    party = crossing.party
    projected, polled = point.of(party)
    text = alert_text.exit_poll_tracking_text(
        party,
        projected,
        polled,
        crossing.holds,
        tracking.departs_beyond if crossing.holds else tracking.back_within,
        point.seats_with_figures,
        register.total_seats,
        result,
        party_names(register),
    )
    # Each departure and each return is news of its own: none replaces another.
    return seat_alert(
        alert_id=tracking_id(result.election_id, crossing, occurrence),
        alert_type=told_type(crossing),
        policy=policy,
        result=result,
        text=text,
        figures={
            "projected_seats": projected,
            "exit_poll_seats": polled,
            "difference": projected - polled,
            "departs_beyond": tracking.departs_beyond,
            "back_within": tracking.back_within,
            "seats_with_figures": point.seats_with_figures,
            "seats_declared": seats_declared,
            "total_seats": register.total_seats,
            "model": tracking.projecting.model,
        },
        party=party,
        audience=tracking.audience,
    )
