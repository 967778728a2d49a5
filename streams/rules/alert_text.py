"""Headlines and bodies of alerts, written from the figures (never from anyone's copy)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from schemas.exit_poll import ExitPoll
from schemas.results import CandidateResult, SeatResult
from streams.rules.watchlist import PersonOfNote, WatchCategory

HEADLINE_MAX = 140
UK_TIME = ZoneInfo("Europe/London")
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth"}


@dataclass(frozen=True)
class AlertText:
    headline: str
    body: str


def clock(moment: dt.datetime) -> str:
    """UK clock time as a desk says it, e.g. '07:00 BST' (GMT in winter elections)."""
    local = moment.astimezone(UK_TIME)
    return f"{local:%H:%M} {local.tzname()}"


def fit(*headlines: str) -> str:
    """The first headline that fits the 140-character limit; the last one cut if none does."""
    for headline in headlines:
        if len(headline) <= HEADLINE_MAX:
            return headline
    return headlines[-1][: HEADLINE_MAX - 1].rstrip() + "…"


def votes(number: int) -> str:
    return f"{number:,}"


def ordinal(position: int) -> str:
    return _ORDINALS.get(position, f"{position}th")


def party_name(code: str | None, names: Mapping[str, str]) -> str:
    if code is None:
        return "no party"
    return names.get(code, code)


def described(candidate: CandidateResult) -> str:
    """'Terry Jermy (Labour)'; the brackets read the same for any party, or none."""
    return f"{candidate.name} ({candidate.party_name})"


def _majority_clause(result: SeatResult) -> str:
    if result.majority is None:
        return "figures to follow"
    return f"majority {votes(result.majority)}"


def _declared(result: SeatResult) -> str:
    return f"Declared {clock(result.declared_at)}."


def outcome_label(result: SeatResult, names: Mapping[str, str]) -> str:
    """'Labour gain from Conservative' in full names (the result's own label uses codes)."""
    winner = party_name(result.winning_party, names)
    if result.gain:
        return f"{winner} gain from {party_name(result.previous_party, names)}"
    return f"{winner} hold"


def _placing(person: CandidateResult | None, result: SeatResult) -> str:
    """'second with 11,217 votes, 630 behind' when figures are in; else nothing."""
    if person is None or person.votes is None or result.winner is None:
        return ""
    ranked = sorted(result.candidates, key=lambda c: c.votes or 0, reverse=True)
    position = next(i for i, c in enumerate(ranked, start=1) if c.person_id == person.person_id)
    behind = (result.winner.votes or 0) - person.votes
    return f"{ordinal(position)} with {votes(person.votes)} votes, {votes(behind)} behind"


# --- national moments ------------------------------------------------------------------------


def exit_poll_text(poll: ExitPoll, names: Mapping[str, str], majority_line: int) -> AlertText:
    ranked = sorted(poll.projections, key=lambda p: (-p.seats, p.party == "Others", p.party))
    top = ranked[0]
    listed = ", ".join(f"{party_name(p.party, names)} {p.seats}" for p in ranked[:3])
    if top.seats >= majority_line:
        outlook = f"{party_name(top.party, names)} majority of {2 * top.seats - poll.total_seats}"
    else:
        outlook = f"hung parliament, {party_name(top.party, names)} short of {majority_line}"
    # Others last: it is not a party, however many seats it is given.
    listing = sorted(ranked, key=lambda p: (p.party == "Others", -p.seats, p.party))
    everyone = "; ".join(f"{party_name(p.party, names)} {p.seats}" for p in listing)
    return AlertText(
        headline=fit(f"Exit poll: {listed}; {outlook}", f"Exit poll: {listed}"),
        body=(
            f"Projected seats at {clock(poll.published_at)}: {everyone}. "
            f"{majority_line} of {poll.total_seats} seats are needed for a majority. "
            f"Source: {poll.source}."
        ),
    )


def first_declaration_text(result: SeatResult, names: Mapping[str, str]) -> AlertText:
    label = outcome_label(result, names)
    winner = f" {described(result.winner)} elected," if result.winner else ""
    return AlertText(
        headline=fit(
            f"First seat declared: {result.constituency_name}, {label}",
            f"First seat declared: {result.constituency_name}",
        ),
        body=(
            f"{result.constituency_name} is the first constituency to declare.{winner} "
            f"{label}, {_majority_clause(result)}. {_declared(result)}"
        ),
    )


def last_declaration_text(
    result: SeatResult, total_seats: int, names: Mapping[str, str]
) -> AlertText:
    label = outcome_label(result, names)
    return AlertText(
        headline=fit(
            f"All {total_seats} seats declared; the last is {result.constituency_name}, {label}",
            f"All {total_seats} seats declared; the last is {result.constituency_name}",
        ),
        body=(
            f"{result.constituency_name} completes the count of all {total_seats} "
            f"constituencies: {label}, {_majority_clause(result)}. {_declared(result)}"
        ),
    )


def speaker_note(majority_line: int, total_seats: int) -> str:
    return (
        f"The Speaker's seat is counted as the Speaker's, not any party's; the line stays "
        f"at {majority_line} of {total_seats}."
    )


def majority_won_text(
    party: str,
    seats: int,
    result: SeatResult,
    majority_line: int,
    total_seats: int,
    names: Mapping[str, str],
) -> AlertText:
    name = party_name(party, names)
    when = clock(result.declared_at)
    return AlertText(
        headline=fit(
            f"Majority for {name}: {result.constituency_name} makes it {seats} seats at {when}",
            f"Majority for {name}: {result.constituency_name}, {when}",
            f"Majority for {name}",
        ),
        body=(
            f"{name} now hold {seats} seats, reaching the {majority_line} needed for a "
            f"majority, with {result.constituency_name} declared at {when}. "
            + speaker_note(majority_line, total_seats)
        ),
    )


def leader_safe_text(
    party: str,
    seats: int,
    rival: str | None,
    rival_seats: int,
    undeclared: int,
    strictly: bool,
    result: SeatResult,
    names: Mapping[str, str],
) -> AlertText:
    """Largest party certain (strictly) or cannot be overtaken (at worst a tie)."""
    name = party_name(party, names)
    rival_name = party_name(rival, names) if rival else "any other party"
    if strictly:
        headline = f"{name} certain to be the largest party"
        outcome = "no other party can now reach their total, let alone pass it"
    else:
        headline = f"{name} can no longer be overtaken"
        outcome = "no other party can now finish with more seats (at most a tie)"
    return AlertText(
        headline=fit(
            f"{headline}: {seats} seats, {rival_name} {rival_seats}, {undeclared} to declare",
            headline,
        ),
        body=(
            f"{name} have {seats} seats; the nearest rival, {rival_name}, has {rival_seats} "
            f"with {undeclared} seats still to declare, so {outcome}. Settled by "
            f"{result.constituency_name}, declared at {clock(result.declared_at)}."
        ),
    )


def exit_poll_tracking_text(
    party: str,
    projected: int,
    polled: int,
    departs: bool,
    limit: int,
    seats_with_figures: int,
    total_seats: int,
    result: SeatResult,
    names: Mapping[str, str],
) -> AlertText:
    """The projection departs from the exit poll for a party (further than `limit` seats),
    or is back in line with it (within `limit`)."""
    name = party_name(party, names)
    gap = projected - polled
    apart = f"{abs(gap)} {'more' if gap > 0 else 'fewer'} than" if gap else "the same as"
    if departs:
        lead, verdict = "Projection departs from exit poll", f"more than {limit} seats apart"
    else:
        lead, verdict = "Projection back in line with exit poll", f"within {limit} seats again"
    return AlertText(
        headline=fit(
            f"{lead}: {name} {projected} projected, exit poll {polled}", f"{lead}: {name}"
        ),
        body=(
            f"With {seats_with_figures} of {total_seats} seats declared with figures, the "
            f"projection gives {name} {projected} seats, {apart} the exit poll's {polled}: "
            f"{verdict}. After {result.constituency_name}, declared at "
            f"{clock(result.declared_at)}."
        ),
    )


# --- people of note --------------------------------------------------------------------------


def person_result_text(
    person: PersonOfNote, result: SeatResult, names: Mapping[str, str]
) -> AlertText:
    """A person of note won or lost the seat the result is for."""
    winner = result.winner
    assert winner is not None, "a person's result needs a winner"
    seat = result.constituency_name
    standing = next((c for c in result.candidates if c.person_id == person.person_id), None)
    party = standing.party_name if standing else party_name(person.party, names)
    who = _person_title(person)
    if winner.person_id == person.person_id:
        verb = "wins" if result.gain else "holds"
        headline = fit(
            f"{who} {verb} {seat}, {_majority_clause(result)}",
            f"{who} {verb} {seat}",
            f"{person.name} {verb} {seat}",
        )
        body = f"{person.name} ({party}), {person.role}, {verb} {seat}"
        if winner.votes is not None:
            body += f" with {votes(winner.votes)} votes"
        body += f"; {outcome_label(result, names)}, {_majority_clause(result)}. {_declared(result)}"
        return AlertText(headline, body)
    headline = fit(
        f"{who} loses {seat} to {described(winner)}, {_majority_clause(result)}",
        f"{who} loses {seat} to {described(winner)}",
        f"{person.name} loses {seat} to {described(winner)}",
        f"{person.name} loses {seat}",
    )
    placing = _placing(standing, result)
    body = f"{person.name} ({party}), {person.role}, loses {seat}"
    body += f": {placing}." if placing else "."
    body += f" Elected: {described(winner)}"
    if winner.votes is not None:
        body += f" with {votes(winner.votes)} votes"
    body += f"; {outcome_label(result, names)}, {_majority_clause(result)}. {_declared(result)}"
    return AlertText(headline, body)


def _person_title(person: PersonOfNote) -> str:
    # Titles read before the name ("Defence Secretary Grant Shapps"); dated roles do not.
    if person.category is WatchCategory.PRIME_MINISTER:
        return f"Prime Minister {person.name}"
    if person.category is WatchCategory.FORMER_PRIME_MINISTER:
        return f"Former prime minister {person.name}"
    if person.category is WatchCategory.FORMER_PARTY_LEADER:
        return f"{person.name}, {person.role},"
    return f"{person.role} {person.name}"


# --- seats -----------------------------------------------------------------------------------


def seat_gain_text(result: SeatResult, names: Mapping[str, str]) -> AlertText:
    winner = party_name(result.winning_party, names)
    loser = party_name(result.previous_party, names)
    elected = f"{result.winner.name} elected, " if result.winner else ""
    return AlertText(
        headline=fit(
            f"{result.constituency_name}: {winner} gain from {loser}, {_majority_clause(result)}",
            f"{result.constituency_name}: {winner} gain from {loser}",
        ),
        body=(
            f"{result.constituency_name}: {outcome_label(result, names)}; {elected}"
            f"{_majority_clause(result)}. {_declared(result)}"
        ),
    )


def shock_gain_text(
    result: SeatResult, notional_majority_share: float, names: Mapping[str, str]
) -> AlertText:
    winner = party_name(result.winning_party, names)
    loser = party_name(result.previous_party, names)
    points = f"{notional_majority_share * 100:.1f}"
    return AlertText(
        headline=fit(
            f"Shock in {result.constituency_name}: {winner} gain from {loser}, who led by "
            f"{points} points in 2019",
            f"Shock in {result.constituency_name}: {winner} gain from {loser}",
        ),
        body=(
            f"{loser} led {result.constituency_name} by {points} points of the vote in the "
            f"notional 2019 result on the new boundaries. Result: {outcome_label(result, names)}, "
            f"{_majority_clause(result)}. {_declared(result)}"
        ),
    )


def narrow_margin_text(result: SeatResult, names: Mapping[str, str]) -> AlertText:
    assert result.majority is not None and result.winner is not None
    margin = "on a tie settled by lot" if result.tie else f"by {votes(result.majority)} votes"
    return AlertText(
        headline=fit(
            f"{result.constituency_name} won {margin}: {outcome_label(result, names)}",
            f"{result.constituency_name} won {margin}",
        ),
        body=(
            f"{described(result.winner)} wins {result.constituency_name} {margin}; "
            f"{outcome_label(result, names)}. {_declared(result)}"
        ),
    )


def recount_text(result: SeatResult) -> AlertText:
    return AlertText(
        headline=fit(f"Recount in {result.constituency_name}", "Recount announced"),
        body=(
            f"A recount has been announced in {result.constituency_name}; the result will "
            f"follow. Announced {clock(result.declared_at)}."
        ),
    )


# --- revisions -------------------------------------------------------------------------------


def amended_text(new: AlertText, changes: Sequence[str], result: SeatResult) -> AlertText:
    what = "; ".join(changes) if changes else "figures revised"
    return AlertText(
        headline=fit(f"Amended: {new.headline}", new.headline),
        body=(
            f"{new.body} This replaces an earlier alert after revision {result.revision} "
            f"({result.kind}) of {result.constituency_name}: {what}."
        ),
    )


def retracted_text(old_headline: str, reason: str, result: SeatResult) -> AlertText:
    return AlertText(
        headline=fit(
            f"Withdrawn: {old_headline}", f"Withdrawn: alert on {result.constituency_name}"
        ),
        body=(
            f"An earlier alert no longer holds after revision {result.revision} "
            f"({result.kind}) of {result.constituency_name}: {reason}. "
            f"{_declared(result)}"
        ),
    )
