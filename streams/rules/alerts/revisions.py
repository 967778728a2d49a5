"""Corrections and recounts: a seat's alerts now, against its alerts at the earlier revision.

Both sides come from the same pure detectors, so the difference is a diff by id. An alert that
no longer holds is retracted; one that holds with other figures is amended; one that holds
only now is sent under an id derived from the new revision, because the outbox never sends an
id twice and the same fact may have been sent, then retracted, at an earlier revision.

Which of a fact's ids were really sent depends on revisions this change cannot see, so
`supersedes` names every id the fact could have been told under at an earlier revision: the
first id first, then the amended, re-told and withdrawn ids of revisions 1 to n-1. A consumer
that deletes what an alert supersedes is then always right (deleting an id it never had is
harmless), and one that keys by `supersedes[0]` keeps one alert per fact.
"""

from __future__ import annotations

from schemas.alert import Alert, AlertType
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import (
    AlertPolicy,
    alert_id,
    louder,
    party_names,
    quieter,
    seat_alert,
)
from streams.rules.alerts.people import people_alerts
from streams.rules.alerts.seats import seat_alerts
from streams.rules.reference import Register
from streams.rules.watchlist import Watchlist

# What an id is derived for; "revised" is a fact told again under a new id after a correction.
AMENDED, RETOLD, RETRACTED = "amended", "revised", "retracted"


def earlier_ids(first_id: str, revision: int) -> list[str]:
    """Every id a fact first told as `first_id` may carry from revisions before `revision`."""
    ids = [first_id]
    for earlier in range(1, revision):
        ids += [alert_id(first_id, kind, earlier) for kind in (AMENDED, RETOLD, RETRACTED)]
    return ids


def outcome_alerts(
    result: SeatResult, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> list[Alert]:
    """Everything one revision of a seat says about who won: gains, margins, people."""
    return seat_alerts(result, register, policy) + people_alerts(
        result, register, watchlist, policy
    )


def revised_alerts(
    result: SeatResult,
    baseline: SeatResult | None,
    register: Register,
    watchlist: Watchlist,
    policy: AlertPolicy,
) -> list[Alert]:
    """The seat's outcome alerts at `result`, as news relative to `baseline`."""
    now = outcome_alerts(result, register, watchlist, policy)
    if baseline is None:
        return now
    before = {a.alert_id: a for a in outcome_alerts(baseline, register, watchlist, policy)}
    alerts: list[Alert] = []
    for alert in now:
        old = before.get(alert.alert_id)
        if old is None:
            alerts.append(_newly_true(alert, result))
        elif old.figures != alert.figures:
            alerts.append(_amended(old, alert, result, policy))
    current = {a.alert_id for a in now}
    alerts.extend(
        _retracted(old, result, register, policy)
        for old_id, old in before.items()
        if old_id not in current
    )
    return alerts


def _newly_true(alert: Alert, result: SeatResult) -> Alert:
    return alert.model_copy(
        update={
            "alert_id": alert_id(alert.alert_id, RETOLD, result.revision),
            "supersedes": earlier_ids(alert.alert_id, result.revision),
        }
    )


def _changes(old: Alert, new: Alert) -> list[str]:
    changed = []
    for key in sorted(set(old.figures) | set(new.figures)):
        was, now = old.figures.get(key), new.figures.get(key)
        if was != now and key != "winner_person_id":
            changed.append(f"{key.replace('_', ' ')} {_shown(was)} → {_shown(now)}")
    return changed


def _shown(value: int | float | str | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def _amended(old: Alert, new: Alert, result: SeatResult, policy: AlertPolicy) -> Alert:
    text = alert_text.amended_text(
        alert_text.AlertText(new.headline, new.body), _changes(old, new), result
    )
    original = policy.priority(new.type)
    if old.figures.get("winner_person_id") != new.figures.get("winner_person_id"):
        # Someone else won: as loud as the original, so everyone who heard it hears this.
        priority = original
    else:
        # Only the figures moved: never louder than the original or than amendments are set.
        priority = quieter(policy.priority(AlertType.AMENDED), original)
    return new.model_copy(
        update={
            "alert_id": alert_id(old.alert_id, AMENDED, result.revision),
            "type": AlertType.AMENDED,
            "priority": priority,
            "headline": text.headline,
            "body": text.body,
            "supersedes": earlier_ids(old.alert_id, result.revision),
            "replaces_type": new.type,
        }
    )


def _retracted(old: Alert, result: SeatResult, register: Register, policy: AlertPolicy) -> Alert:
    names = party_names(register)
    if result.winner is None:
        reason = "no winner is declared"
    elif old.figures.get("winner_person_id") not in (None, result.winner.person_id):
        reason = f"{alert_text.described(result.winner)} is now the winner"
    else:
        label = alert_text.outcome_label(result, names)
        majority = "" if result.majority is None else f", majority {result.majority:,}"
        reason = f"the result is now {label}{majority}"
    text = alert_text.retracted_text(old.headline, reason, result)
    alert = seat_alert(
        alert_id=alert_id(old.alert_id, RETRACTED, result.revision),
        alert_type=AlertType.RETRACTED,
        policy=policy,
        result=result,
        text=text,
        figures={
            "winner": result.winner.name if result.winner else None,
            "winner_person_id": result.winner.person_id if result.winner else None,
            "winning_party": result.winning_party,
            "majority": result.majority,
        },
        person_id=old.person_id,
        party=old.party,
    )
    # As loud as what it withdraws, or the people told the first time are never untold.
    return alert.model_copy(
        update={
            "priority": louder(policy.priority(AlertType.RETRACTED), policy.priority(old.type)),
            "supersedes": earlier_ids(old.alert_id, result.revision),
            "replaces_type": old.type,
        }
    )
