"""What every detector shares: the applied change, the alert policy, ids and the alert builder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from schemas.alert import Alert, AlertPriority, AlertTrigger, AlertType, Audience
from schemas.results import SeatResult
from streams.rules.alert_text import AlertText
from streams.rules.reference import Register

ALERT_ID_LENGTH = 20  # hex digits of sha256: 80 bits, plenty for a night's few thousand alerts

DEFAULT_PRIORITIES: Mapping[AlertType, AlertPriority] = MappingProxyType(
    {
        AlertType.MAJORITY_WON: AlertPriority.FLASH,
        AlertType.FORMER_PRIME_MINISTER_DEFEATED: AlertPriority.FLASH,
        AlertType.PRIME_MINISTER_RESULT: AlertPriority.FLASH,
        AlertType.CABINET_MINISTER_DEFEATED: AlertPriority.HIGH,
        AlertType.LARGEST_PARTY_CERTAIN: AlertPriority.HIGH,
        AlertType.CANNOT_BE_OVERTAKEN: AlertPriority.HIGH,
        AlertType.FIRST_DECLARATION: AlertPriority.HIGH,
        AlertType.LAST_DECLARATION: AlertPriority.HIGH,
        AlertType.EXIT_POLL: AlertPriority.HIGH,
        AlertType.SHOCK_GAIN: AlertPriority.HIGH,
        AlertType.PARTY_LEADER_RESULT: AlertPriority.HIGH,
        AlertType.FORMER_PARTY_LEADER_RESULT: AlertPriority.NORMAL,
        AlertType.ATTENDING_CABINET_MINISTER_DEFEATED: AlertPriority.NORMAL,
        AlertType.SHADOW_CABINET_DEFEATED: AlertPriority.NORMAL,
        AlertType.RECOUNT: AlertPriority.NORMAL,
        AlertType.NARROW_MARGIN: AlertPriority.NORMAL,
        AlertType.AMENDED: AlertPriority.NORMAL,
        AlertType.RETRACTED: AlertPriority.NORMAL,
        AlertType.SEAT_GAIN: AlertPriority.LOW,
        AlertType.PROJECTION_DEPARTS_EXIT_POLL: AlertPriority.HIGH,
        AlertType.PROJECTION_BACK_IN_LINE: AlertPriority.NORMAL,
    }
)
# Ties within a priority are broken by this order, so a change's alerts always sort the same.
TYPE_ORDER = {alert_type: index for index, alert_type in enumerate(AlertType)}


@dataclass(frozen=True)
class AlertPolicy:
    """The alert settings the detectors obey: priorities, the two thresholds, and whether
    the alerts are a rehearsal's (the worker's mode)."""

    priorities: Mapping[AlertType, AlertPriority] = field(
        default_factory=lambda: DEFAULT_PRIORITIES
    )
    shock_majority_share: float = 0.40
    narrow_margin_votes: int = 100
    rehearsal: bool = True  # as ELECTION_MODE: only a live worker's alerts say they are live

    def priority(self, alert_type: AlertType) -> AlertPriority:
        return self.priorities.get(alert_type, DEFAULT_PRIORITIES[alert_type])


def merged_priorities(overrides: Mapping[str, str]) -> Mapping[AlertType, AlertPriority]:
    priorities = dict(DEFAULT_PRIORITIES)
    for type_name, priority_name in overrides.items():
        try:
            alert_type = AlertType(type_name)
        except ValueError:
            known = ", ".join(t.value for t in AlertType)
            raise ValueError(
                f"alert_priorities: unknown alert type {type_name!r} ({known})"
            ) from None
        try:
            priorities[alert_type] = AlertPriority(priority_name)
        except ValueError:
            known = ", ".join(p.value for p in AlertPriority)
            raise ValueError(
                f"alert_priorities: {type_name} has unknown priority {priority_name!r} ({known})"
            ) from None
    return MappingProxyType(priorities)


class PartySeats(Protocol):
    """A party's seats, as the national detectors read them (a PartyTally is one)."""

    @property
    def party(self) -> str: ...

    @property
    def seats(self) -> int: ...


class SeatPicture(Protocol):
    """The nation's seats after a change: all the national detectors read of the state.

    A StateOfParties is one; the publisher passes the lighter SeatCount below, since it needs
    one for every change and the full snapshot (votes and shares of every party) only once per
    batch of changes.
    """

    @property
    def sequence(self) -> int: ...

    @property
    def total_seats(self) -> int: ...

    @property
    def seats_declared(self) -> int: ...

    @property
    def parties(self) -> Sequence[PartySeats]: ...


@dataclass(frozen=True, slots=True)
class PartySeatCount:
    party: str
    seats: int


@dataclass(frozen=True, slots=True)
class SeatCount:
    """The nation's seats after a change: what the national alert detectors read.

    The snapshot (state_of_parties) has votes and shares of every party as well, and costs a
    hundred times more to build; the story needs this after every change, that once per
    batch of changes.
    """

    sequence: int
    total_seats: int
    seats_declared: int
    parties: tuple[PartySeatCount, ...]


@dataclass(frozen=True)
class AppliedChange:
    """One revision applied to the tallies: the seat before and after, the nation before and after.

    `last_declared` matters only when `previous` named no winner (a recount notice): it is
    the latest earlier revision that did, so a result after a recount is compared with the
    result the recount questioned, and alerts that no longer hold are retracted.
    """

    result: SeatResult
    previous: SeatResult | None
    state_before: SeatPicture
    state_after: SeatPicture
    last_declared: SeatResult | None = field(default=None)

    @property
    def baseline(self) -> SeatResult | None:
        """The earlier revision whose alerts this one's are compared with (one with a winner)."""
        return baseline_of(self.previous, self.last_declared)


def baseline_of(
    previous: SeatResult | None, last_declared: SeatResult | None = None
) -> SeatResult | None:
    """The revision a seat's alerts are compared with: the one before, if it named a winner,
    else the latest earlier one that did (a recount notice names none)."""
    if previous is not None and previous.winner is not None:
        return previous
    if last_declared is not None and last_declared.winner is not None:
        return last_declared
    return None


def alert_id(*parts: object) -> str:
    """A short sha256 over the parts: the same event always gets the same id."""
    text = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ALERT_ID_LENGTH]


def fact_id(
    election_id: str,
    alert_type: AlertType,
    constituency_id: str | None = None,
    subject: object = None,
) -> str:
    """The id of a fact of the night: never the revision, so re-detection repeats it."""
    return alert_id(election_id, alert_type.value, constituency_id, subject)


def rounded(share: float | None) -> float | None:
    """Shares to four places: enough for a tenth of a point, and stable to compare."""
    return None if share is None else round(share, 4)


def party_names(register: Register) -> dict[str, str]:
    return {code: party.name for code, party in register.parties.items()}


def trigger(result: SeatResult) -> AlertTrigger:
    return AlertTrigger(
        ballot_id=result.ballot_id,
        constituency_id=result.constituency_id,
        revision=result.revision,
    )


def seat_alert(
    *,
    alert_id: str,
    alert_type: AlertType,
    policy: AlertPolicy,
    result: SeatResult,
    text: AlertText,
    figures: Mapping[str, int | float | str | None],
    person_id: int | None = None,
    party: str | None = None,
    audience: Audience = "public",
) -> Alert:
    """An alert triggered by one seat's revision, at that revision's declaration time."""
    return Alert(
        alert_id=alert_id,
        election_id=result.election_id,
        rehearsal=policy.rehearsal,
        type=alert_type,
        priority=policy.priority(alert_type),
        headline=text.headline,
        body=text.body,
        occurred_at=result.declared_at,
        constituency_id=result.constituency_id,
        constituency_name=result.constituency_name,
        person_id=person_id,
        party=party,
        triggered_by=trigger(result),
        figures=dict(figures),
        audience=audience,
    )


def louder(*priorities: AlertPriority) -> AlertPriority:
    return min(priorities, key=lambda p: p.rank)


def quieter(*priorities: AlertPriority) -> AlertPriority:
    return max(priorities, key=lambda p: p.rank)


def sort_key(alert: Alert) -> tuple[int, int, str, int, str]:
    return (
        alert.priority.rank,
        TYPE_ORDER[alert.type],
        alert.constituency_id or "",
        alert.person_id or 0,
        alert.alert_id,
    )


def in_order(alerts: Iterable[Alert]) -> list[Alert]:
    """Loudest first, then by type, seat, person and id: a change's alerts always sort alike."""
    return sorted(alerts, key=sort_key)
