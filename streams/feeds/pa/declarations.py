"""A PA seat message as our declaration, PA's ids mapped to ours through the feed's mapping.

The seat's name, ballot and election come from our register (PA spells seats its own way);
each candidate's party comes from the mapping (PA's abbreviations are not ours); the
candidate's name is PA's, so the worker's check of names against the nomination still
catches a mapping row that points at the wrong person. What PA adds on top (majority,
gain or hold, shares) is ours to compute and is not carried over.
"""

from __future__ import annotations

from pydantic import ValidationError

from schemas.common import election_date
from schemas.declaration import FIGURES_ERROR, Candidate, Declaration, DeclarationKind
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaCandidate, PaSeatMessage
from streams.feeds.pa.refusals import Refusal, RefusalReason, Refused
from streams.rules.reference import Register


def declaration_from_pa(
    message: PaSeatMessage, kind: DeclarationKind, mapping: FeedMapping, register: Register
) -> Declaration | Refusal:
    """`message` as a declaration of `kind` (see revisions.py), or why it is refused."""
    polling_day = election_date(register.election_id)
    if message.election.date != polling_day:
        return Refusal(
            RefusalReason.PA_WRONG_ELECTION,
            f"election of {message.election.date.isoformat()}, not of {polling_day.isoformat()}",
        )
    ons_id = mapping.ons_id(message.constituency.number)
    if isinstance(ons_id, Refusal):
        return ons_id
    # The mapping was checked against this register when loaded: its seats are all here.
    seat = register.constituencies[ons_id]
    try:
        candidates = [_candidate(c, ons_id, mapping) for c in message.constituency.candidates]
    except Refused as exc:
        return exc.refusal
    constituency = message.constituency
    try:
        return Declaration(
            election_id=register.election_id,
            ballot_id=seat.ballot_id,
            constituency_id=ons_id,
            constituency_name=seat.name,
            kind=kind,
            revision=message.revision,
            declared_at=message.declaration_time,
            electorate=constituency.electorate,
            valid_votes=constituency.turnout,
            rejected_ballots=constituency.rejected_ballots,
            candidates=candidates,
            tie_declared=constituency.tie_declared,
            source=mapping.source,
            rehearsal=mapping.rehearsal,
        )
    except ValidationError as exc:
        return _invalid(exc)


def _candidate(candidate: PaCandidate, ons_id: str, mapping: FeedMapping) -> Candidate:
    person = mapping.candidate(candidate.pa_id)
    if isinstance(person, Refusal):
        raise Refused(person.reason, person.detail)
    if person.ons_id != ons_id:
        raise Refused(
            RefusalReason.PA_UNKNOWN_CANDIDATE,
            f"PA candidate {candidate.pa_id} stands in {person.ons_id}, not {ons_id}",
        )
    party = mapping.party(candidate.party.pa_id)
    if isinstance(party, Refusal):
        raise Refused(party.reason, party.detail)
    try:
        return Candidate(
            person_id=person.person_id,
            name=candidate.name,
            party=party,
            votes=candidate.party.votes,
            elected=candidate.elected,
        )
    except ValidationError as exc:
        raise Refused(RefusalReason.PA_INVALID_DECLARATION, _errors(exc)) from None


def _invalid(exc: ValidationError) -> Refusal:
    if any(error["type"] == FIGURES_ERROR for error in exc.errors()):
        return Refusal(RefusalReason.PA_FIGURES_DO_NOT_ADD_UP, _errors(exc))
    return Refusal(RefusalReason.PA_INVALID_DECLARATION, _errors(exc))


def _errors(exc: ValidationError) -> str:
    # Messages only: pydantic's own text quotes the whole input, which here is PA's file.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'declaration'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )
