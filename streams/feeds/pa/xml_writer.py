"""Our declarations and states of the parties written as PA would send them, for rehearsals.

The inverse of `xml_reader.py` and `declarations.py`: a declaration written here, read back
and mapped is the same declaration but for its `source`. A correction is written as a
result with a higher revision (PA has no correction message). A name is split at its last
space into `firstName` and `surname`, which joins back to the same name; the Commons
Library's own split is not in the register. Writing a seat, candidate or party the feed has
no id for is a programming error (ValueError): the mapping is checked against the register
when loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from schemas.common import election_date
from schemas.declaration import Declaration, DeclarationKind
from schemas.results import StateOfParties
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaMessageType
from streams.rules.reference import Register

ROOTS = {
    DeclarationKind.RUSH: PaMessageType.RUSH,
    DeclarationKind.RESULT: PaMessageType.RESULT,
    DeclarationKind.CORRECTION: PaMessageType.RESULT,
    DeclarationKind.RECOUNT: PaMessageType.RECOUNT,
}
# PA's mark for a flag that is set; a flag that is not set is left out.
FLAG = "*"

K = TypeVar("K")


def declaration_xml(declaration: Declaration, mapping: FeedMapping, register: Register) -> bytes:
    """The PA file of one declaration: a rush, a result or a recount notice."""
    root = Element(
        ROOTS[declaration.kind].value,
        revision=str(declaration.revision),
        declarationTime=declaration.declared_at.isoformat(),
    )
    election = _election(root, register)
    constituency = SubElement(
        election,
        "Constituency",
        _present(
            number=_id(mapping.seat_numbers, declaration.constituency_id, "seat", mapping),
            name=declaration.constituency_name,
            electorate=declaration.electorate,
            turnout=declaration.valid_votes,
            rejectedBallots=declaration.rejected_ballots,
            **_outcome(declaration, register),
        ),
    )
    for candidate in declaration.candidates:
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
                percentageShare=_percentage(candidate.votes, declaration.valid_votes),
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


def _outcome(declaration: Declaration, register: Register) -> dict[str, object]:
    """Who won and what it means, as PA states it beside the figures."""
    sitting = register.constituencies[declaration.constituency_id].notional_2019_winner
    winner = declaration.winner
    if winner is None:  # a recount notice
        return {"sittingParty": sitting}
    majority = None
    if declaration.has_full_figures:
        votes = sorted((c.votes or 0 for c in declaration.candidates), reverse=True)
        majority = votes[0] - (votes[1] if len(votes) > 1 else 0)
    winning = winner.party.abbreviation
    return {
        "majority": majority,
        "gainOrHold": "hold" if winning == sitting else "gain",
        "winningParty": winning,
        "sittingParty": sitting,
        "tieDeclared": FLAG if declaration.tie_declared else None,
    }


def _present(**attributes: object) -> dict[str, str]:
    """Attributes as PA writes them: text, and the ones with no value left out."""
    return {name: str(value) for name, value in attributes.items() if value is not None}


def _percentage(part: int | None, whole: int | None) -> str | None:
    if part is None or not whole:
        return None
    return f"{part / whole * 100:.2f}"


def _id(ids: Mapping[K, int], ours: K, what: str, mapping: FeedMapping) -> int:
    found = ids.get(ours)
    if found is None:
        raise ValueError(f"{what} {ours!r} has no PA id in feed {mapping.feed}")
    return found
