"""Alert detectors: pure functions from an applied change (or the exit poll) to alerts.

One module per family: `national` (exit poll, first and last seats, majority and the moments
before it), `story` (those moments in the night's own time, amended when data comes late),
`people` (the watchlist), `seats` (gains, shocks, margins, recounts) and `revisions` (amend or
retract what a correction or recount changed).
"""

from __future__ import annotations

from schemas.alert import Alert
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult
from streams.rules.alerts.base import (
    DEFAULT_PRIORITIES,
    AlertPolicy,
    AppliedChange,
    alert_id,
    fact_id,
    in_order,
)
from streams.rules.alerts.national import (
    Crossing,
    cannot_be_overtaken,
    crossings,
    exit_poll_alerts,
    has_majority,
    largest_party_certain,
    moment_alert,
    national_alerts,
    unbeatable_party,
)
from streams.rules.alerts.people import people_alerts
from streams.rules.alerts.revisions import outcome_alerts, revised_alerts
from streams.rules.alerts.seats import recount_alerts, seat_alerts
from streams.rules.reference import Register
from streams.rules.watchlist import Watchlist

__all__ = [
    "DEFAULT_PRIORITIES",
    "AlertPolicy",
    "AppliedChange",
    "Crossing",
    "alert_id",
    "cannot_be_overtaken",
    "crossings",
    "detect_change",
    "detect_exit_poll",
    "fact_id",
    "has_majority",
    "largest_party_certain",
    "moment_alert",
    "national_alerts",
    "outcome_alerts",
    "people_alerts",
    "recount_alerts",
    "revised_alerts",
    "seat_alerts",
    "seat_change_alerts",
    "unbeatable_party",
]


def detect_change(
    change: AppliedChange, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> list[Alert]:
    """Every alert one applied revision raises, loudest first; the same change, the same list.

    A recount notice names no winner, so it leaves the seat's earlier alerts standing: they
    are compared with the result that follows it (see AppliedChange.last_declared).
    """
    alerts = national_alerts(change, register, policy)
    seat = seat_change_alerts(change.result, change.baseline, register, watchlist, policy)
    return in_order(alerts + seat)


def seat_change_alerts(
    result: SeatResult,
    baseline: SeatResult | None,
    register: Register,
    watchlist: Watchlist,
    policy: AlertPolicy,
) -> list[Alert]:
    """The alerts about the seat itself (gains, people, margins, recounts, what a correction
    changed, against `baseline`, the revision before with a winner): they hold whenever the
    change arrives, unlike the national moments."""
    alerts = recount_alerts(result, policy)
    if result.winner is not None:
        alerts += revised_alerts(result, baseline, register, watchlist, policy)
    return alerts


def detect_exit_poll(poll: ExitPoll, register: Register, policy: AlertPolicy) -> list[Alert]:
    """The exit poll's alert; the same poll always gives the same id."""
    return in_order(exit_poll_alerts(poll, register, policy))
