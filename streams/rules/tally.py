"""Tally rules: what one declaration adds to the national picture, and the seat's result."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import orjson

from schemas.declaration import Declaration, DeclarationKind
from schemas.results import SeatResult, StateOfParties
from streams.rules.alerts.base import PartySeatCount, SeatCount
from streams.rules.alerts.national import unbeatable_party
from streams.rules.reference import ConstituencyRef, Register
from streams.rules.sources import source_name

Contribution = dict[str, int]

SEQUENCE = "meta:sequence"


def _party_votes(declaration: Declaration) -> dict[str, int]:
    votes: dict[str, int] = defaultdict(int)
    for candidate in declaration.candidates:
        votes[candidate.party.abbreviation] += candidate.votes or 0
    return dict(votes)


def winning_party(declaration: Declaration) -> str | None:
    winner = declaration.winner
    return winner.party.abbreviation if winner else None


def seat_contribution(
    declaration: Declaration,
    ref: ConstituencyRef,
    previous_contribution: Contribution | None = None,
) -> Contribution:
    """Integer counters this seat adds to the national tallies; exact to subtract and re-add.

    A recount notice changes no number: the seat keeps what it contributed before. The
    Speaker stands as party `Spk`, so Chorley counts as the Speaker's seat (a `Spk hold`
    against the notional 2019 result), never as a seat of the Speaker's old party. In a
    declared tie the candidate elected by lot takes the seat like any winner.
    """
    if declaration.kind is DeclarationKind.RECOUNT:
        return dict(previous_contribution or {})
    winner = winning_party(declaration)
    assert winner is not None  # the schema guarantees one elected candidate
    # Every key below is set once (parties are distinct within each group), so plain
    # assignment adds up as a counter would, without a defaultdict's lookups per key.
    counters: Contribution = {f"party:{winner}:seats": 1, "total:declared": 1}
    if winner != ref.notional_2019_winner:
        counters[f"party:{winner}:gains"] = 1
        counters[f"party:{ref.notional_2019_winner}:losses"] = 1
    if declaration.has_full_figures:
        valid = declaration.valid_votes or 0
        counters["total:with_figures"] = 1
        counters["total:votes"] = valid
        counters["total:electorate"] = declaration.electorate or 0
        counters["total:rejected"] = declaration.rejected_ballots or 0
        for party, votes in _party_votes(declaration).items():
            counters[f"party:{party}:votes"] = votes
        # Notional 2019 votes on this seat's 2024 turnout, so the national share change in
        # declared seats stays a sum that subtract-old/add-new keeps exact.
        for party, share in ref.notional_2019_shares.items():
            counters[f"party:{party}:n19"] = round(share * valid)
    return {key: value for key, value in counters.items() if value}


def result_label(winner: str, previous: str) -> str:
    """The Commons Library's wording: 'Lab gain from Con', 'SNP hold'."""
    return f"{winner} hold" if winner == previous else f"{winner} gain from {previous}"


def seat_result(
    declaration: Declaration,
    ref: ConstituencyRef,
    sequence: int,
    recount: bool = False,
    previous: SeatResult | None = None,
) -> SeatResult:
    """The seat as graphics show it after this revision.

    `recount` marks a recount announced and not yet concluded; a recount notice always is
    one. A recount notice carries no figures, so the seat keeps `previous` (its last
    result), marked, until a higher revision brings the recount's result.

    Shares, majority share and turnout are over valid votes, the Commons Library's
    convention: its candidate `Share` is votes / valid votes, and the majority percentages
    of declaration-times.csv come out of majority / valid votes in 602 of 645 rows (294
    with rejected ballots added to the denominator). The files hold no turnout figure to reproduce,
    so turnout is the Library's: valid votes / electorate.
    """
    if declaration.kind is DeclarationKind.RECOUNT and previous is not None:
        # The figures announced before stand until the recount's result replaces them.
        common = _seat_fields(declaration, ref, sequence, True)
        return previous.model_copy(
            update={name: common[name] for name in _COMMON_FIELDS} | {"recount": True}
        )
    return SeatResult.model_validate(_seat_fields(declaration, ref, sequence, recount))


def seat_result_json(declaration: Declaration, ref: ConstituencyRef) -> bytes:
    """`seat_result(declaration, ref, 0)` as JSON, made straight from its fields.

    The apply step stores and logs this for every declaration; validating a model only to
    encode it cost more than the rest of the step. The fields are the model's, in its order,
    from a validated declaration, and the unit tests hold the two equal byte for byte.
    """
    return orjson.dumps(_seat_fields(declaration, ref, 0, False), option=orjson.OPT_UTC_Z)


# What a recount notice carries over a previous result: the header of the revision.
_COMMON_FIELDS = (
    "election_id",
    "ballot_id",
    "constituency_id",
    "constituency_name",
    "kind",
    "revision",
    "source",
    "declared_at",
    "sequence",
    "previous_party",
    "rehearsal",
)


def _seat_fields(
    declaration: Declaration, ref: ConstituencyRef, sequence: int, recount: bool
) -> dict[str, Any]:
    """Every field of the seat's SeatResult, in the model's order (see seat_result).

    Plain dicts and, in seat_result, one validation of the whole result: a CandidateResult
    built on its own per candidate, then checked again inside the SeatResult, cost more than
    the rest of the step's arithmetic.
    """
    pending = declaration.kind is DeclarationKind.RECOUNT
    winner = None if pending else declaration.winner
    assert pending or winner is not None  # the schema guarantees one elected candidate
    party = winner.party.abbreviation if winner else None
    full = declaration.has_full_figures  # never a recount notice's
    valid = declaration.valid_votes or 0
    shares_19 = ref.notional_2019_shares
    candidates: list[dict[str, Any]] = []
    # Most votes first; among equals (a tie, or a rush with no votes) the elected one first.
    for candidate in sorted(
        () if pending else declaration.candidates,
        key=lambda c: (-(c.votes or 0), not c.elected, c.name, c.person_id),
    ):
        share = (candidate.votes or 0) / valid if full and valid else None
        abbreviation = candidate.party.abbreviation
        change = (
            share - shares_19[abbreviation]
            if share is not None and abbreviation in shares_19
            else None
        )
        candidates.append(
            {
                "person_id": candidate.person_id,
                "name": candidate.name,
                "party": abbreviation,
                "party_name": candidate.party.name,
                "votes": candidate.votes if full else None,
                "share": share,
                "share_change": change,
                "elected": candidate.elected,
            }
        )
    majority = majority_share = turnout = swing = None
    swing_from = None
    if full:
        elected = candidates[0]  # the sort puts the elected candidate first among equals
        runner_up = candidates[1] if len(candidates) >= 2 else None
        # An unopposed winner's majority is every valid vote.
        majority = (elected["votes"] or 0) - (runner_up["votes"] or 0 if runner_up else 0)
        majority_share = majority / valid if valid else None
        if runner_up is not None and party is not None:
            swing, swing_from = _swing(party, runner_up["party"], candidates, shares_19)
        if declaration.electorate:
            turnout = valid / declaration.electorate
    previous_party = ref.notional_2019_winner
    return {
        "schema_version": "1",
        "message_type": "seat_result",
        "election_id": declaration.election_id,
        "ballot_id": declaration.ballot_id,
        "constituency_id": declaration.constituency_id,
        "constituency_name": ref.name,
        "kind": declaration.kind,
        "revision": declaration.revision,
        "source": source_name(declaration.source),
        "declared_at": declaration.declared_at,
        "sequence": sequence,
        "figures_pending": not full,
        "recount": pending or recount,
        "winning_party": party,
        "winner": candidates[0] if candidates else None,
        "tie": declaration.tie_declared and not pending,
        "previous_party": previous_party,
        "gain": party is not None and party != previous_party,
        "result_label": result_label(party, previous_party) if party else None,
        "electorate": declaration.electorate if full else None,
        "valid_votes": declaration.valid_votes if full else None,
        "rejected_ballots": declaration.rejected_ballots if full else None,
        "turnout": turnout,
        "majority": majority,
        "majority_share": majority_share,
        "swing": swing,
        "swing_from": swing_from,
        "candidates": candidates,
        "rehearsal": declaration.rehearsal,
    }


def _swing(
    winner: str,
    runner_up: str,
    candidates: list[dict[str, Any]],
    shares_19: Mapping[str, float],
) -> tuple[float | None, str | None]:
    """Butler swing, in points, from the runner-up's party to the winner's, vs notional 2019.

    Half the winner's change in share minus half the runner-up's; none when either party
    has no notional 2019 share (independents, new parties) or both are the same party.
    """
    if winner == runner_up or winner not in shares_19 or runner_up not in shares_19:
        return None, None
    share_24: dict[str, float] = defaultdict(float)
    for candidate in candidates:
        share_24[candidate["party"]] += candidate["share"] or 0.0
    change_winner = share_24[winner] - shares_19[winner]
    change_runner_up = share_24[runner_up] - shares_19[runner_up]
    return round((change_winner - change_runner_up) / 2 * 100, 2), runner_up


def state_of_parties(
    totals: Mapping[str, int],
    register: Register,
    sequence: int,
    as_of: dt.datetime | None,
    last_constituency_id: str | None,
    rehearsal: bool = True,
) -> StateOfParties:
    """The national picture from the flat counters (an empty mapping: nothing declared);
    `rehearsal` says whose tallies they are, a rehearsal's unless said otherwise.

    The majority line is the register's nominal one, 326 of 650, whoever holds Chorley:
    the Speaker's seat is listed as party `Spk` and never lowered from the line, because
    broadcasters differ on how to count it (the Speaker and deputies do not vote).
    """
    # Plain dicts and one validation of the whole snapshot: it is rebuilt after every change,
    # with a tally for each of a hundred parties, and building each PartyTally on its own
    # cost more than everything else the publisher does per change.
    per_party: dict[str, dict[str, int]] = {}
    for key, value in totals.items():
        if key.startswith("party:"):
            _, party, field = key.split(":", 2)
            fields = per_party.get(party)
            if fields is None:
                fields = per_party[party] = {}
            fields[field] = fields.get(field, 0) + int(value)
    total_votes = int(totals.get("total:votes", 0))
    electorate = int(totals.get("total:electorate", 0))
    rows: list[tuple[int, int, str, dict[str, Any]]] = []
    for party, fields in per_party.items():
        seats, votes = fields.get("seats", 0), fields.get("votes", 0)
        gains, losses = fields.get("gains", 0), fields.get("losses", 0)
        if not (seats or votes or gains or losses):
            continue  # a party only in the 2019 baseline of seats declared so far
        share = votes / total_votes if total_votes else 0.0
        share_19 = fields.get("n19", 0) / total_votes if total_votes else None
        known = register.parties.get(party)
        rows.append(
            (
                seats,
                votes,
                party,
                {
                    "party": party,
                    "name": known.name if known else party,
                    "seats": seats,
                    "gains": gains,
                    "losses": losses,
                    "seats_change": gains - losses,
                    "votes": votes,
                    "share": share,
                    "share_change": share - share_19 if share_19 is not None else None,
                },
            )
        )
    rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
    majority_line = register.majority_line
    leader = rows[0] if rows and rows[0][0] else None
    leading = leader[2] if leader else None
    declared = int(totals.get("total:declared", 0))
    seat_count = SeatCount(
        sequence,
        register.total_seats,
        declared,
        tuple(PartySeatCount(row[2], row[0]) for row in rows if row[0]),
    )
    return StateOfParties.model_validate(
        {
            "election_id": register.election_id,
            "rehearsal": rehearsal,
            "sequence": sequence,
            "as_of": as_of,
            "total_seats": register.total_seats,
            "majority_line": majority_line,
            "seats_declared": declared,
            "seats_with_figures": int(totals.get("total:with_figures", 0)),
            "total_votes": total_votes,
            "electorate_declared": electorate,
            "turnout": total_votes / electorate if electorate else None,
            "largest_party": leading,
            "majority_party": leading if leader and leader[0] >= majority_line else None,
            "cannot_be_overtaken": unbeatable_party(seat_count, register),
            "last_constituency_id": last_constituency_id,
            "parties": [row[3] for row in rows],
        }
    )


def contribution_delta(old: Mapping[str, int], new: Mapping[str, int]) -> Contribution:
    """Counter -> net change from a seat's old contribution to its new one, without the zeros."""
    delta = {name: -value for name, value in old.items()}
    for name, value in new.items():
        delta[name] = delta.get(name, 0) + value
    return {name: change for name, change in delta.items() if change}


def add_delta(totals: dict[str, int], delta: Mapping[str, int]) -> None:
    """Apply a change's delta to totals in place; a counter reaching 0 goes, as in Redis."""
    for name, change in delta.items():
        value = totals.get(name, 0) + change
        if value:
            totals[name] = value
        else:
            totals.pop(name, None)


class RunningTotals:
    """The flat counters followed change by change, for the snapshots of the state."""

    def __init__(self, totals: Mapping[str, int] | None = None) -> None:
        self.totals: dict[str, int] = {k: v for k, v in (totals or {}).items() if k != SEQUENCE}

    def apply(self, delta: Mapping[str, int]) -> None:
        add_delta(self.totals, delta)
