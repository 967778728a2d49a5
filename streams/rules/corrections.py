"""Hand corrections: a seat's result as an editor enters it, made a declaration like any feed's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.common import SCHEMA_VERSION, Party
from schemas.declaration import DeclarationKind
from schemas.results import CandidateResult, SeatResult
from streams.rules.reference import ConstituencyRef
from streams.rules.sources import (
    ConflictTurn,
    SourceRules,
    SourceView,
    conflict_message,
    disagreements,
    source_figures,
    source_rank,
)

# The source every hand correction comes from, first in the default precedence.
DESK = "desk"
# What an entry that leaves its revision out is validated with: validation only checks that
# a revision is in range, and the desk gives it the seat's next one afterwards.
ANY_REVISION = 1


def desk_entry(raw: bytes, max_bytes: int) -> dict[str, Any] | None:
    """The JSON object an editor sent, or None when it is none (too large to read, malformed,
    not an object): validation of the bytes as they came then says why."""
    if len(raw) > max_bytes:
        return None
    try:
        entry = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError):
        return None
    return entry if isinstance(entry, dict) else None


def desk_declaration(entry: Mapping[str, Any], name: str, rehearsal: bool) -> bytes:
    """The entry as the desk sends it: from `desk:<name>`, of the worker's mode whatever the
    entry said, and with a revision to validate (the one asked for, else ANY_REVISION)."""
    return orjson.dumps(
        {
            "revision": ANY_REVISION,
            **entry,
            "source": f"{DESK}:{name}",
            "rehearsal": rehearsal,
        }
    )


@dataclass(frozen=True)
class RevisionRefused(Exception):
    """A revision the desk will not send: `taken` (on record or claimed by another correction)
    or `revision_jump` (so far ahead the tally would refuse it)."""

    reason: Literal["taken", "revision_jump"]
    detail: str


def desk_revision(asked: int | None, on_record: int, claimed: int, max_jump: int) -> int:
    """The revision a correction goes out as: the one asked for, or the seat's next.

    `on_record` is the desk's revision the tally applied (0: none), `claimed` the highest
    another correction took; revisions are per source, so the feeds' do not count. One not
    above both would be a duplicate or a conflict in the tally, one more than `max_jump` (as
    ELECTION_MAX_REVISION_JUMP) past `on_record` a revision jump: both are refused here, at
    the door, where the editor still hears of it.
    """
    highest = max(on_record, claimed)
    revision = highest + 1 if asked is None else asked
    if revision <= highest:
        raise RevisionRefused(
            "taken",
            f"the desk's revision {highest} of this seat is on record or on its way: send "
            f"revision {highest + 1}, or leave revision out for the next",
        )
    if revision > on_record + max_jump:
        raise RevisionRefused(
            "revision_jump",
            f"revision {revision} is more than {max_jump} (ELECTION_MAX_REVISION_JUMP) past the "
            f"desk's revision {on_record} of this seat on record",
        )
    return revision


def sources_report(
    ref: ConstituencyRef,
    counted: str | None,
    views: Mapping[str, SourceView],
    rules: SourceRules,
    election_id: str,
    rehearsal: bool,
) -> dict[str, Any]:
    """What the desk sees of a seat: whose figures are on air (`counted`, as the tally
    stored it), every source's latest figures, first in precedence first, and each pair of
    sources that disagree, with every difference and both values."""
    ranked = sorted(views.values(), key=lambda view: source_rank(view.source, rules.precedence))
    found = disagreements(views, rules.precedence, rules.time_tolerance_ms)
    return {
        "constituency_id": ref.ons_id,
        "constituency_name": ref.name,
        "rehearsal": rehearsal,
        "on_air": counted,
        "sources": [source_figures(view, ref).model_dump(mode="json") for view in ranked],
        "conflicts": [
            conflict_message(
                ConflictTurn(disagreement), ref, election_id, counted, 0, rehearsal
            ).model_dump(mode="json", include={"conflict_id", "differences"})
            for disagreement in found.values()
        ],
    }


class ChoiceRefused(ValueError):
    """A source's figures the desk cannot put on air as they are: the message says why."""


def chosen_entry(
    on_air: SeatResult, view: SourceView, parties: Mapping[str, Party]
) -> dict[str, Any]:
    """A hand correction putting one source's latest figures for the seat on air: its kind,
    time, winner and votes, with the seat's ballot, names and parties as on air. The editor
    chose between sources that disagree; the desk's correction outranks both."""
    known = {candidate.person_id for candidate in on_air.candidates}
    if view.votes is not None and set(view.votes) != known:
        raise ChoiceRefused(
            f"{view.source} names other candidates than the result on air: enter it by hand"
        )
    if view.winner is not None and view.winner not in known:
        raise ChoiceRefused(f"{view.source}'s winner is not a candidate of the result on air")
    full = view.votes is not None
    return {
        "schema_version": SCHEMA_VERSION,
        "message_type": "declaration",
        "election_id": on_air.election_id,
        "ballot_id": on_air.ballot_id,
        "constituency_id": on_air.constituency_id,
        "constituency_name": on_air.constituency_name,
        "kind": DeclarationKind.CORRECTION.value if full else view.kind,
        "declared_at": view.declared_at.isoformat(),
        "electorate": on_air.electorate,
        "valid_votes": sum(view.votes.values()) if view.votes is not None else None,
        "rejected_ballots": on_air.rejected_ballots if full else None,
        "candidates": [
            {
                "person_id": candidate.person_id,
                "name": candidate.name,
                "party": _party(candidate, parties),
                "votes": view.votes[candidate.person_id] if view.votes is not None else None,
                "elected": candidate.person_id == view.winner,
            }
            for candidate in on_air.candidates
        ],
    }


def _party(candidate: CandidateResult, parties: Mapping[str, Party]) -> dict[str, Any]:
    registered = parties.get(candidate.party)
    if registered is not None:
        return registered.model_dump(mode="json")
    return {"abbreviation": candidate.party, "name": candidate.party_name}
