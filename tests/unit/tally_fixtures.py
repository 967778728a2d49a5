"""The real 2024 night for tally tests: declarations, official figures, and revisions of a seat."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from functools import cache
from pathlib import Path

from schemas.declaration import Declaration, DeclarationKind
from scripts.night_builder import Night, build_night
from streams.rules.reference import CANDIDATES_FILE, CONSTITUENCIES_FILE

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"


SOUTH_WEST_NORFOLK = "E14001497"  # Lab gain from Con by 630, declared after a recount
TRUSS = 188  # Liz Truss, Democracy Club person id: lost South West Norfolk
_BST = dt.timezone(dt.timedelta(hours=1))
CHORLEY = "E14001170"  # the Speaker's seat


@cache
def night() -> Night:
    """One `result`, revision 1, per seat, in declaration order (scripts/night_builder.py)."""
    return build_night(DATA_DIR)


def declaration_of(ons_id: str) -> Declaration:
    return next(d for d in night().declarations if d.constituency_id == ons_id)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@cache
def constituency_rows() -> dict[str, dict[str, str]]:
    return {row["ONS ID"]: row for row in _rows(CONSTITUENCIES_FILE)}


@cache
def candidate_rows() -> dict[int, dict[str, str]]:
    """The candidate file by Democracy Club person id."""
    return {int(row["DC Person ID"]): row for row in _rows(CANDIDATES_FILE)}


@cache
def votes_by_party() -> Counter[str]:
    votes: Counter[str] = Counter()
    for row in _rows(CANDIDATES_FILE):
        votes[row["Party abbreviation"]] += int(row["Votes"])
    return votes


@cache
def gains_and_losses() -> tuple[Counter[str], Counter[str]]:
    """From the Library's `Result` column: 'Lab gain from Con' is a Lab gain and a Con loss."""
    gains: Counter[str] = Counter()
    losses: Counter[str] = Counter()
    for row in constituency_rows().values():
        words = row["Result"].split()
        if words[1] == "gain":
            gains[words[0]] += 1
            losses[words[3]] += 1
    return gains, losses


# Revisions of one seat, built from its real result.


def rush(result: Declaration, revision: int = 1) -> Declaration:
    """The winner only, figures to follow."""
    return result.model_copy(
        update={
            "kind": DeclarationKind.RUSH,
            "revision": revision,
            "candidates": [c.model_copy(update={"votes": None}) for c in result.candidates],
            "electorate": None,
            "valid_votes": None,
            "rejected_ballots": None,
        }
    )


def recount_notice(result: Declaration, revision: int) -> Declaration:
    """A recount announced: nobody elected, no figures."""
    return rush(result, revision).model_copy(
        update={
            "kind": DeclarationKind.RECOUNT,
            "candidates": [
                c.model_copy(update={"votes": None, "elected": False}) for c in result.candidates
            ],
        }
    )


def revised(result: Declaration, revision: int, kind: DeclarationKind) -> Declaration:
    return result.model_copy(update={"revision": revision, "kind": kind})


def swapped_top_two(result: Declaration, revision: int = 1) -> Declaration:
    """A wrong count: the top two candidates' votes swapped, so the runner-up is elected."""
    ranked = sorted(result.candidates, key=lambda c: -(c.votes or 0))
    first, second = ranked[0], ranked[1]
    votes = {first.person_id: second.votes, second.person_id: first.votes}
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "revision": revision,
            "candidates": [
                {
                    **c.model_dump(),
                    "votes": votes.get(c.person_id, c.votes),
                    "elected": c.person_id == second.person_id,
                }
                for c in result.candidates
            ],
        }
    )


def tied(result: Declaration, elect_second: bool = True) -> Declaration:
    """The top two level on votes, the winner chosen by lot (by default the one listed second)."""
    ranked = sorted(result.candidates, key=lambda c: -(c.votes or 0))
    first, second = ranked[0], ranked[1]
    level = ((first.votes or 0) + (second.votes or 0)) // 2
    chosen = second if elect_second else first
    candidates = [
        {
            **c.model_dump(),
            "votes": level if c.person_id in (first.person_id, second.person_id) else c.votes,
            "elected": c.person_id == chosen.person_id,
        }
        for c in result.candidates
    ]
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "candidates": candidates,
            "valid_votes": sum(c["votes"] or 0 for c in candidates),
            "tie_declared": True,
        }
    )


def eventful_revisions(result: Declaration) -> list[Declaration]:
    """A seat's night at its most eventful: rush, result, recount notice, correction."""
    return [
        rush(result, 1),
        revised(result, 2, DeclarationKind.RESULT),
        recount_notice(result, 3),
        revised(swapped_top_two(result), 4, DeclarationKind.CORRECTION),
    ]


def misreported(result: Declaration, source: str = "agency:wire") -> Declaration:
    """As one outlet had it: Truss 30 votes closer (lost by 600, not 630), at 06:48, not 07:00."""
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "source": source,
            "declared_at": dt.datetime(2024, 7, 5, 6, 48, tzinfo=_BST),
            "valid_votes": (result.valid_votes or 0) + 30,
            "candidates": [
                {**c.model_dump(), "votes": (c.votes or 0) + (30 if c.person_id == TRUSS else 0)}
                for c in result.candidates
            ],
        }
    )
