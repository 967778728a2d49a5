"""National milestones: exit poll, first and last seats, the majority and the moments before it.

The majority line is the register's (326 of 650) and it does not move for the Speaker: the
Speaker's seat counts as the Speaker's (party 'Spk'), never as a party's, so no party can
reach the line with it, and an undeclared Chorley still counts among the seats to declare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schemas.alert import Alert, AlertType
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import (
    AlertPolicy,
    AppliedChange,
    PartySeats,
    SeatPicture,
    alert_id,
    fact_id,
    louder,
    party_names,
    seat_alert,
)
from streams.rules.reference import Register

# Independents are not one party: they can be a rival in the arithmetic (a bloc is the worst
# case) but never "the largest party".
NOT_A_PARTY = "Ind"


def exit_poll_alerts(poll: ExitPoll, register: Register, policy: AlertPolicy) -> list[Alert]:
    """The exit poll is published: one alert, the same id however often it is re-read."""
    text = alert_text.exit_poll_text(poll, party_names(register), register.majority_line)
    top = max(poll.projections, key=lambda p: (p.seats, p.party != "Others"))
    figures: dict[str, int | float | str | None] = {
        f"seats_{p.party}": p.seats for p in poll.projections
    }
    figures["largest_party"] = top.party
    figures["projected_majority"] = (
        2 * top.seats - poll.total_seats if top.seats >= register.majority_line else None
    )
    figures["majority_line"] = register.majority_line
    return [
        Alert(
            alert_id=fact_id(
                poll.election_id, AlertType.EXIT_POLL, None, poll.published_at.isoformat()
            ),
            election_id=poll.election_id,
            rehearsal=policy.rehearsal,
            type=AlertType.EXIT_POLL,
            priority=policy.priority(AlertType.EXIT_POLL),
            headline=text.headline,
            body=text.body,
            occurred_at=poll.published_at,
            party=top.party,
            figures=figures,
        )
    ]


def _tally(state: SeatPicture, party: str) -> PartySeats | None:
    return next((t for t in state.parties if t.party == party), None)


def _seats(state: SeatPicture, party: str) -> int:
    tally = _tally(state, party)
    return tally.seats if tally else 0


def undeclared(state: SeatPicture) -> int:
    return max(state.total_seats - state.seats_declared, 0)


def _contender(party: str, register: Register) -> bool:
    return party not in (register.speaker_party, NOT_A_PARTY)


def nearest_rival(state: SeatPicture, party: str, register: Register) -> PartySeats | None:
    """The other party with most seats; the Speaker is nobody's rival."""
    rivals = [
        t for t in state.parties if t.party not in (party, register.speaker_party) and t.seats
    ]
    return max(rivals, key=lambda t: (t.seats, t.party), default=None)


class _Standing:
    """A state's seats read once, for the three milestones of every party that could hold one.

    The tests below run up to six times per change; reading the picture's party list each
    time made the milestones a tenth of the publisher's work.
    """

    def __init__(self, state: SeatPicture, register: Register) -> None:
        self.seats = {t.party: t.seats for t in state.parties if t.seats}
        self.undeclared = undeclared(state)
        self.speaker = register.speaker_party
        self.majority_line = register.majority_line

    def rival_seats(self, party: str) -> int:
        """Seats of the other party with most; the Speaker is nobody's rival."""
        return max(
            (n for other, n in self.seats.items() if other != party and other != self.speaker),
            default=0,
        )

    def has_majority(self, party: str) -> bool:
        return party not in (self.speaker, NOT_A_PARTY) and (
            self.seats.get(party, 0) >= self.majority_line
        )

    def cannot_be_overtaken(self, party: str) -> bool:
        seats = self.seats.get(party, 0)
        if party in (self.speaker, NOT_A_PARTY) or seats == 0:
            return False
        return seats >= self.rival_seats(party) + self.undeclared

    def largest_party_certain(self, party: str) -> bool:
        seats = self.seats.get(party, 0)
        if party in (self.speaker, NOT_A_PARTY) or seats == 0:
            return False
        return seats > self.rival_seats(party) + self.undeclared

    def could_hold(self) -> set[str]:
        """Parties for which a milestone may hold: a majority, or at least the seats of every
        other party but the Speaker's and of every seat still to declare (the other two
        milestones need more than that)."""
        contenders = [n for party, n in self.seats.items() if party != self.speaker]
        top = max(contenders, default=0)
        return {
            party
            for party, n in self.seats.items()
            if party != self.speaker
            and (n >= self.majority_line or (n >= top and n >= self.undeclared))
        }


def has_majority(state: SeatPicture, party: str, register: Register) -> bool:
    """At or over the register's line (326 of 650); the Speaker's seat is nobody's."""
    return _Standing(state, register).has_majority(party)


def cannot_be_overtaken(state: SeatPicture, party: str, register: Register) -> bool:
    """No other party can finish with more seats, even winning every seat left (a tie at worst)."""
    return _Standing(state, register).cannot_be_overtaken(party)


def largest_party_certain(state: SeatPicture, party: str, register: Register) -> bool:
    """Strictly ahead of what any other party could reach: the largest party, with no tie."""
    return _Standing(state, register).largest_party_certain(party)


# "Cannot be overtaken" and "largest party certain" hold one seat apart and tell an app user
# the same fact twice (the 2024 night: 242 and 241 seats to declare, the same figures), so
# only the stronger is pushed; the weaker is the state of the parties' `cannot_be_overtaken`.
_STANDING_TESTS: dict[AlertType, Callable[[_Standing, str], bool]] = {
    AlertType.MAJORITY_WON: _Standing.has_majority,
    AlertType.LARGEST_PARTY_CERTAIN: _Standing.largest_party_certain,
}


def _could_hold(state: SeatPicture, register: Register) -> set[str]:
    return _Standing(state, register).could_hold()


def unbeatable_party(state: SeatPicture, register: Register) -> str | None:
    """The party no rival can finish above (a tie at worst), if any: a flag for graphics."""
    standing = _Standing(state, register)
    return next(
        (party for party in sorted(standing.could_hold()) if standing.cannot_be_overtaken(party)),
        None,
    )


@dataclass(frozen=True, slots=True)
class Crossing:
    """A national moment passed between two states (`holds`), or passed back (not `holds`).

    First and last declaration have no party and are never passed back: a declared seat
    stays declared, whatever its corrections say.
    """

    alert_type: AlertType
    party: str | None
    holds: bool


def crossings(before: SeatPicture, after: SeatPicture, register: Register) -> list[Crossing]:
    """The national moments a step from `before` to `after` passes, in a fixed order."""
    found: list[Crossing] = []
    if before.seats_declared == 0 and after.seats_declared >= 1:
        found.append(Crossing(AlertType.FIRST_DECLARATION, None, True))
    if before.seats_declared < register.total_seats <= after.seats_declared:
        found.append(Crossing(AlertType.LAST_DECLARATION, None, True))
    was_standing = _Standing(before, register)
    now_standing = _Standing(after, register)
    # Only a party that could hold a milestone in either state can cross it; the rest would
    # be False before and after, and testing them all is quadratic in parties per change.
    parties = sorted(was_standing.could_hold() | now_standing.could_hold())
    for alert_type, holds in _STANDING_TESTS.items():
        for party in parties:
            was, now = holds(was_standing, party), holds(now_standing, party)
            if was != now:
                found.append(Crossing(alert_type, party, now))
    return found


def moment_root_id(election_id: str, crossing: Crossing) -> str:
    """The id a moment is first told under: the election and the moment, never the seat."""
    return fact_id(election_id, crossing.alert_type, None, crossing.party)


def moment_id(
    election_id: str, crossing: Crossing, ons_id: str, revision: int, occurrence: int
) -> str:
    """The id of one telling of a moment: the first passing has the root id; a passing back
    names the seat that caused it; passing the same line again later is news of its own."""
    root = moment_root_id(election_id, crossing)
    if not crossing.holds:
        return alert_id(root, "retracted", ons_id, revision)
    return root if occurrence == 0 else alert_id(root, "again", occurrence)


def moment_alert(
    crossing: Crossing,
    result: SeatResult,
    state: SeatPicture,
    register: Register,
    policy: AlertPolicy,
    occurrence: int = 0,
) -> Alert:
    """The alert telling a moment passed at `result`, with the nation at `state` after it."""
    ident = moment_id(
        result.election_id, crossing, result.constituency_id, result.revision, occurrence
    )
    if crossing.alert_type in (AlertType.FIRST_DECLARATION, AlertType.LAST_DECLARATION):
        return _count_alert(crossing.alert_type, result, state, register, policy)
    assert crossing.party is not None
    if not crossing.holds:
        return _milestone_withdrawn(
            crossing.alert_type, crossing.party, result, state, register, policy
        )
    alert = _milestone(crossing.alert_type, crossing.party, result, state, register, policy)
    if occurrence:
        root = moment_root_id(result.election_id, crossing)
        alert = alert.model_copy(update={"alert_id": ident, "supersedes": [root]})
    return alert


def national_alerts(change: AppliedChange, register: Register, policy: AlertPolicy) -> list[Alert]:
    """The moments one change passes, judged between the states just before and after it.

    Right only when changes come in the night's own order; the publisher's NightStory keeps
    that order (and amends what late data moves), this is its step at the end of the night.
    """
    return [
        moment_alert(crossing, change.result, change.state_after, register, policy)
        for crossing in crossings(change.state_before, change.state_after, register)
    ]


def _milestone_figures(
    state: SeatPicture, party: str, register: Register
) -> dict[str, int | float | str | None]:
    rival = nearest_rival(state, party, register)
    return {
        "seats": _seats(state, party),
        "majority_line": register.majority_line,
        "total_seats": state.total_seats,
        "seats_declared": state.seats_declared,
        "seats_to_declare": undeclared(state),
        "nearest_rival": rival.party if rival else None,
        "nearest_rival_seats": rival.seats if rival else 0,
        "state_sequence": state.sequence,
    }


def _milestone(
    alert_type: AlertType,
    party: str,
    result: SeatResult,
    state: SeatPicture,
    register: Register,
    policy: AlertPolicy,
) -> Alert:
    names = party_names(register)
    figures = _milestone_figures(state, party, register)
    figures["delivered_by"] = result.constituency_id
    if alert_type is AlertType.MAJORITY_WON:
        text = alert_text.majority_won_text(
            party, _seats(state, party), result, register.majority_line, state.total_seats, names
        )
    else:
        text = alert_text.leader_safe_text(
            party,
            _seats(state, party),
            str(figures["nearest_rival"]) if figures["nearest_rival"] else None,
            int(figures["nearest_rival_seats"] or 0),
            undeclared(state),
            alert_type is AlertType.LARGEST_PARTY_CERTAIN,
            result,
            names,
        )
    return seat_alert(
        alert_id=fact_id(result.election_id, alert_type, None, party),
        alert_type=alert_type,
        policy=policy,
        result=result,
        text=text,
        figures=figures,
        party=party,
    )


def _milestone_withdrawn(
    alert_type: AlertType,
    party: str,
    result: SeatResult,
    state: SeatPicture,
    register: Register,
    policy: AlertPolicy,
) -> Alert:
    root = fact_id(result.election_id, alert_type, None, party)
    name = alert_text.party_name(party, party_names(register))
    original = f"{name}: {alert_type.value.replace('_', ' ')}"
    reason = f"{name} now have {_seats(state, party)} seats"
    text = alert_text.retracted_text(original, reason, result)
    alert = seat_alert(
        alert_id=alert_id(root, "retracted", result.constituency_id, result.revision),
        alert_type=AlertType.RETRACTED,
        policy=policy,
        result=result,
        text=text,
        figures=_milestone_figures(state, party, register),
        party=party,
    )
    # A withdrawal is as loud as what it withdraws, or the people told are never untold.
    priority = louder(policy.priority(AlertType.RETRACTED), policy.priority(alert_type))
    return alert.model_copy(
        update={"supersedes": [root], "replaces_type": alert_type, "priority": priority}
    )


def _count_alert(
    alert_type: AlertType,
    result: SeatResult,
    state: SeatPicture,
    register: Register,
    policy: AlertPolicy,
) -> Alert:
    """The first seat to declare, or the last: once a night, so the id names no seat."""
    names = party_names(register)
    if alert_type is AlertType.FIRST_DECLARATION:
        text = alert_text.first_declaration_text(result, names)
    else:
        text = alert_text.last_declaration_text(result, register.total_seats, names)
    return seat_alert(
        alert_id=fact_id(result.election_id, alert_type),
        alert_type=alert_type,
        policy=policy,
        result=result,
        text=text,
        figures={
            "seats_declared": state.seats_declared,
            "total_seats": state.total_seats,
            "winning_party": result.winning_party,
            "majority": result.majority,
        },
        party=result.winning_party,
    )
