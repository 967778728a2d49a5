"""Our declarations, seat results and states of the parties written as PA would send them.

The inverse of `xml_reader.py` and `declarations.py`: a declaration written here, read back
and mapped is the same declaration but for its `source`. A seat's stored result is written
as the declaration that made it (`seat_result_xml`), so a graphics template that reads PA's
files reads the worker's unchanged. A correction is written as a result with a higher
revision (PA has no correction message). A name is split at its last space into `firstName`
and `surname`, which joins back to the same name; the Commons Library's own split is not in
the register. Percentages are of valid votes, to two decimal places (`percentageShare`
"41.32"); a share's change is signed, in points against notional 2019 (`percentageChange`
"+8.17"). Writing a seat, candidate or party the feed has no id for is a programming error
(ValueError): the mapping is checked against the register when loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from schemas.common import Party, election_date
from schemas.declaration import Declaration, DeclarationKind
from schemas.results import SeatResult, StateOfParties
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaMessageType
from streams.rules.reference import CandidateRef, Register

ROOTS = {
    DeclarationKind.RUSH: PaMessageType.RUSH,
    DeclarationKind.RESULT: PaMessageType.RESULT,
    DeclarationKind.CORRECTION: PaMessageType.RESULT,
    DeclarationKind.RECOUNT: PaMessageType.RECOUNT,
}
# PA's mark for a flag that is set; a flag that is not set is left out.
FLAG = "*"

K = TypeVar("K")


@dataclass(frozen=True)
class _Standing:
    """A candidate as a PA seat file lists them: with votes once counted."""

    person_id: int
    name: str
    party: Party
    votes: int | None = None
    elected: bool = False


@dataclass(frozen=True)
class _SeatFile:
    """What a PA seat file says, whether it is written from a declaration or a stored result."""

    message_type: PaMessageType
    revision: int
    declared_at: dt.datetime
    ons_id: str
    name: str
    sitting_party: str
    standing: list[_Standing]
    winning_party: str | None = None  # none in a recount notice
    majority: int | None = None  # with full figures only, as the three below
    electorate: int | None = None
    valid_votes: int | None = None
    rejected_ballots: int | None = None
    tie: bool = False


def declaration_xml(declaration: Declaration, mapping: FeedMapping, register: Register) -> bytes:
    """The PA file of one declaration: a rush, a result or a recount notice."""
    winner = declaration.winner
    majority = None
    if declaration.has_full_figures:
        votes = sorted((c.votes or 0 for c in declaration.candidates), reverse=True)
        majority = votes[0] - (votes[1] if len(votes) > 1 else 0)
    seat = _SeatFile(
        message_type=ROOTS[declaration.kind],
        revision=declaration.revision,
        declared_at=declaration.declared_at,
        ons_id=declaration.constituency_id,
        name=declaration.constituency_name,
        sitting_party=register.constituencies[declaration.constituency_id].notional_2019_winner,
        standing=[
            _Standing(c.person_id, c.name, c.party, c.votes, c.elected)
            for c in declaration.candidates
        ],
        winning_party=winner.party.abbreviation if winner else None,
        majority=majority,
        electorate=declaration.electorate,
        valid_votes=declaration.valid_votes,
        rejected_ballots=declaration.rejected_ballots,
        tie=declaration.tie_declared,
    )
    return _seat_xml(seat, mapping, register)


def seat_result_xml(result: SeatResult, mapping: FeedMapping, register: Register) -> bytes:
    """A seat's stored result as the PA file of the declaration that made it: a result (a
    correction too), a rush while its figures are pending, or, while a recount is under way,
    PA's recount notice: the figures announced before it stand in our result, but PA's
    notice elects no one and has no figures, so it lists the seat's nominations alone."""
    nominated = register.constituencies[result.constituency_id].candidates
    notice = _SeatFile(
        message_type=ROOTS[result.kind],
        revision=result.revision,
        declared_at=result.declared_at,
        ons_id=result.constituency_id,
        name=result.constituency_name,
        sitting_party=register.constituencies[result.constituency_id].notional_2019_winner,
        standing=[_Standing(c.person_id, c.name, c.party) for c in nominated.values()],
    )
    if result.kind is DeclarationKind.RECOUNT:
        return _seat_xml(notice, mapping, register)
    declared = replace(
        notice,
        standing=[
            # The nomination's party: PA's ids tell Labour and Labour and Co-operative apart,
            # which a result's party code does not.
            _Standing(
                c.person_id, c.name, _nomination(nominated, c.person_id).party, c.votes, c.elected
            )
            for c in result.candidates
        ],
        winning_party=result.winning_party,
        majority=result.majority,
        electorate=result.electorate,
        valid_votes=result.valid_votes,
        rejected_ballots=result.rejected_ballots,
        tie=result.tie,
    )
    return _seat_xml(declared, mapping, register)


def _seat_xml(seat: _SeatFile, mapping: FeedMapping, register: Register) -> bytes:
    root = Element(
        seat.message_type.value,
        revision=str(seat.revision),
        declarationTime=seat.declared_at.isoformat(),
    )
    election = _election(root, register)
    constituency = SubElement(
        election,
        "Constituency",
        _present(
            number=_id(mapping.seat_numbers, seat.ons_id, "seat", mapping),
            name=seat.name,
            electorate=seat.electorate,
            turnout=seat.valid_votes,
            rejectedBallots=seat.rejected_ballots,
            **_outcome(seat),
        ),
    )
    for candidate in seat.standing:
        first_name, _, surname = candidate.name.rpartition(" ")
        element = SubElement(
            constituency,
            "Candidate",
            _present(
                paId=_id(mapping.candidate_ids, candidate.person_id, "candidate", mapping),
                firstName=first_name,
                surname=surname,
                elected=FLAG if candidate.elected else None,
            ),
        )
        SubElement(
            element,
            "Party",
            _present(
                paId=_id(mapping.party_ids, candidate.party, "party", mapping),
                name=candidate.party.name,
                abbreviation=candidate.party.abbreviation,
                votes=candidate.votes,
                percentageShare=_percentage(candidate.votes, seat.valid_votes),
            ),
        )
    return _document(root)


def state_of_parties_xml(state: StateOfParties, mapping: FeedMapping, register: Register) -> bytes:
    """PA's state of the parties file for one of our snapshots; its revision is the sequence."""
    root = Element(
        PaMessageType.STATE_OF_PARTIES.value,
        _present(
            revision=state.sequence,
            declarationTime=state.as_of.isoformat() if state.as_of else None,
            numberOfResults=state.seats_declared,
            totalNumberOfConstituencies=state.total_seats,
            totalVotes=state.total_votes,
        ),
    )
    _election(root, register)
    parties = SubElement(root, "Parties")
    for tally in state.parties:
        SubElement(
            parties,
            "Party",
            _present(
                paId=_id(mapping.totals_party_ids, tally.party, "party", mapping),
                name=tally.name,
                abbreviation=tally.party,
                totalSeats=tally.seats,
                gains=tally.gains,
                losses=tally.losses,
                totalVotes=tally.votes,
                percentageShare=f"{tally.share * 100:.2f}",
                percentageChange=(
                    None if tally.share_change is None else f"{tally.share_change * 100:+.2f}"
                ),
            ),
        )
    return _document(root)


def _document(root: Element) -> bytes:
    indent(root)  # PA's files are indented; people on the desk open them
    return tostring(root, encoding="utf-8", xml_declaration=True)


def _election(root: Element, register: Register) -> Element:
    return SubElement(
        root,
        "Election",
        name=register.name,
        date=election_date(register.election_id).isoformat(),
    )


def _outcome(seat: _SeatFile) -> dict[str, object]:
    """Who won and what it means, as PA states it beside the figures."""
    if seat.winning_party is None:  # a recount notice
        return {"sittingParty": seat.sitting_party}
    return {
        "majority": seat.majority,
        "gainOrHold": "hold" if seat.winning_party == seat.sitting_party else "gain",
        "winningParty": seat.winning_party,
        "sittingParty": seat.sitting_party,
        "tieDeclared": FLAG if seat.tie else None,
    }


def _present(**attributes: object) -> dict[str, str]:
    """Attributes as PA writes them: text, and the ones with no value left out."""
    return {name: str(value) for name, value in attributes.items() if value is not None}


def _percentage(part: int | None, whole: int | None) -> str | None:
    if part is None or not whole:
        return None
    return f"{part / whole * 100:.2f}"


def _nomination(nominated: Mapping[int, CandidateRef], person_id: int) -> CandidateRef:
    found = nominated.get(person_id)
    if found is None:
        raise ValueError(f"candidate {person_id} of a stored result is not nominated there")
    return found


def _id(ids: Mapping[K, int], ours: K, what: str, mapping: FeedMapping) -> int:
    found = ids.get(ours)
    if found is None:
        raise ValueError(f"{what} {ours!r} has no PA id in feed {mapping.feed}")
    return found
