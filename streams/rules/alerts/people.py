"""People of note: the prime minister, a former one, ministers and party leaders, by person id."""

from __future__ import annotations

from typing import NamedTuple

from schemas.alert import Alert, AlertType
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import AlertPolicy, fact_id, party_names, rounded, seat_alert
from streams.rules.reference import Register
from streams.rules.watchlist import PersonOfNote, WatchCategory, Watchlist


class Rule(NamedTuple):
    alert_type: AlertType
    only_if_defeated: bool


# Cabinet members and ministers who only attend cabinet are told apart: newsrooms count
# cabinet losses with or without the attending ministers, so both counts must be possible.
RULES: dict[WatchCategory, Rule] = {
    WatchCategory.PRIME_MINISTER: Rule(AlertType.PRIME_MINISTER_RESULT, False),
    WatchCategory.FORMER_PRIME_MINISTER: Rule(AlertType.FORMER_PRIME_MINISTER_DEFEATED, True),
    WatchCategory.CABINET: Rule(AlertType.CABINET_MINISTER_DEFEATED, True),
    WatchCategory.ATTENDS_CABINET: Rule(AlertType.ATTENDING_CABINET_MINISTER_DEFEATED, True),
    WatchCategory.SHADOW_CABINET: Rule(AlertType.SHADOW_CABINET_DEFEATED, True),
    WatchCategory.PARTY_LEADER: Rule(AlertType.PARTY_LEADER_RESULT, False),
    WatchCategory.FORMER_PARTY_LEADER: Rule(AlertType.FORMER_PARTY_LEADER_RESULT, False),
    # The Speaker stands unopposed by the main parties; re-election is not news.
}


def stood_here(result: SeatResult, register: Register) -> list[int]:
    """Person ids of everyone who stood in the seat: the result's candidates, and the
    register's nominations for a rush that names only the winner."""
    seat = register.constituency(result.constituency_id)
    nominated = set(seat.candidates) if seat else set()
    return sorted({c.person_id for c in result.candidates} | nominated)


def people_alerts(
    result: SeatResult, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> list[Alert]:
    """Each person of note who stood here: won or lost, as their category asks.

    Defeated means they stood and someone else was elected, from full figures or a rush.
    """
    winner = result.winner
    if winner is None:
        return []
    alerts: list[Alert] = []
    for person_id in stood_here(result, register):
        person = watchlist.get(person_id)
        rule = RULES.get(person.category) if person else None
        if person is None or rule is None:
            continue
        won = winner.person_id == person_id
        if won and rule.only_if_defeated:
            continue
        alerts.append(_person_alert(person, rule.alert_type, won, result, register, policy))
    return alerts


def _person_alert(
    person: PersonOfNote,
    alert_type: AlertType,
    won: bool,
    result: SeatResult,
    register: Register,
    policy: AlertPolicy,
) -> Alert:
    assert result.winner is not None
    standing = next((c for c in result.candidates if c.person_id == person.person_id), None)
    figures: dict[str, int | float | str | None] = {
        "outcome": "won" if won else "lost",
        "category": person.category.value,
        "role": person.role,
        "votes": standing.votes if standing else None,
        "share": rounded(standing.share) if standing else None,
        "winner": result.winner.name,
        "winner_person_id": result.winner.person_id,
        "winner_party": result.winner.party,
        "winner_votes": result.winner.votes,
        "majority": result.majority,
        "previous_party": result.previous_party,
    }
    return seat_alert(
        # The outcome is not in the id: a correction that turns a win into a defeat amends
        # the one alert about this person's seat instead of leaving two that contradict.
        alert_id=fact_id(result.election_id, alert_type, result.constituency_id, person.person_id),
        alert_type=alert_type,
        policy=policy,
        result=result,
        text=alert_text.person_result_text(person, result, party_names(register)),
        figures=figures,
        person_id=person.person_id,
        party=standing.party if standing else person.party,
    )
