"""Seats: every gain, the shock gains, narrow margins and recount notices."""

from __future__ import annotations

from schemas.alert import Alert, AlertType
from schemas.declaration import DeclarationKind
from schemas.results import SeatResult
from streams.rules import alert_text
from streams.rules.alerts.base import (
    AlertPolicy,
    alert_id,
    fact_id,
    party_names,
    rounded,
    seat_alert,
)
from streams.rules.reference import Register

Figures = dict[str, int | float | str | None]


def _figures(result: SeatResult) -> Figures:
    winner = result.winner
    return {
        "winner": winner.name if winner else None,
        "winner_person_id": winner.person_id if winner else None,
        "winning_party": result.winning_party,
        "previous_party": result.previous_party,
        "majority": result.majority,
        "majority_share": rounded(result.majority_share),
        "winner_votes": winner.votes if winner else None,
    }


def seat_alerts(result: SeatResult, register: Register, policy: AlertPolicy) -> list[Alert]:
    """Gain, shock gain and narrow margin: facts about who won the seat and by how much.

    Ids name the seat, not the winner: if a correction hands a gain to another party the
    one gain alert of the seat is amended rather than a second gain standing beside it.
    """
    if result.winner is None:
        return []
    names = party_names(register)
    seat = register.constituency(result.constituency_id)
    notional_share = seat.notional_2019_majority_share if seat else None
    figures = _figures(result)
    alerts: list[Alert] = []

    def add(alert_type: AlertType, text: alert_text.AlertText, extra: Figures) -> None:
        alerts.append(
            seat_alert(
                alert_id=fact_id(result.election_id, alert_type, result.constituency_id),
                alert_type=alert_type,
                policy=policy,
                result=result,
                text=text,
                figures=figures | extra,
                person_id=result.winner.person_id if result.winner else None,
                party=result.winning_party,
            )
        )

    if result.gain:
        add(AlertType.SEAT_GAIN, alert_text.seat_gain_text(result, names), {})
        if notional_share is not None and notional_share >= policy.shock_majority_share:
            add(
                AlertType.SHOCK_GAIN,
                alert_text.shock_gain_text(result, notional_share, names),
                {"notional_2019_majority_share": round(notional_share, 4)},
            )
    if result.majority is not None and result.majority < policy.narrow_margin_votes:
        add(AlertType.NARROW_MARGIN, alert_text.narrow_margin_text(result, names), {})
    return alerts


def recount_alerts(result: SeatResult, policy: AlertPolicy) -> list[Alert]:
    """A recount notice: an event of its own, never amended or retracted by later figures."""
    if not (result.recount and result.kind is DeclarationKind.RECOUNT):
        return []
    root = fact_id(result.election_id, AlertType.RECOUNT, result.constituency_id)
    return [
        seat_alert(
            # A seat may be recounted more than once; each notice is its own revision.
            alert_id=alert_id(root, result.revision),
            alert_type=AlertType.RECOUNT,
            policy=policy,
            result=result,
            text=alert_text.recount_text(result),
            figures={"revision": result.revision},
        )
    ]
