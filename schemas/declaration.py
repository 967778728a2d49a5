"""The declaration: what a returning officer announces for one constituency."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, PositiveInt, field_validator, model_validator
from pydantic_core import PydanticCustomError
from uk_election_ids.slugger import slugify

from schemas.common import (
    BallotId,
    ConstituencyId,
    ElectionId,
    InputRehearsal,
    Message,
    Party,
    SchemaVersion,
    ballot_id_for,
)

# Validation (streams/rules/validation.py) maps this error type to its own rejection reason.
FIGURES_ERROR = "figures_do_not_add_up"

# Far above any constituency's electorate (about 77,000 at most in 2024), yet small enough
# that the sums over 650 seats stay exact in Redis integers and in Lua's doubles: a bigger
# figure is a corrupt message, not a result.
MAX_COUNT = 10_000_000
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
# Revisions are compared in Lua, whose numbers are doubles: keep them well inside 2^53.
MAX_REVISION = 1_000_000


def figures_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(FIGURES_ERROR, message)


class DeclarationKind(StrEnum):
    RUSH = "rush"  # winner only, figures to follow
    RESULT = "result"  # full figures
    RECOUNT = "recount"  # a recount has been announced
    CORRECTION = "correction"  # full figures replacing an earlier revision


FULL_FIGURE_KINDS = frozenset({DeclarationKind.RESULT, DeclarationKind.CORRECTION})


class Candidate(Message):
    person_id: PositiveInt = Field(description="Democracy Club person id")
    name: str = Field(min_length=1)
    party: Party
    votes: Count | None = Field(None, description="None in a rush or recount notice")
    elected: bool = False


class Declaration(Message):
    """One revision of one constituency's result; a higher revision replaces a lower one."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["declaration"] = "declaration"
    election_id: ElectionId
    ballot_id: BallotId
    constituency_id: ConstituencyId
    constituency_name: str = Field(min_length=1)
    kind: DeclarationKind
    revision: int = Field(ge=1, le=MAX_REVISION, description="Per-seat revision, starting at 1")
    declared_at: dt.datetime = Field(description="When declared; must carry a UTC offset")
    electorate: Count | None = None
    valid_votes: Count | None = None
    rejected_ballots: Count | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    tie_declared: bool = Field(
        False, description="Top candidates tied; the elected one was chosen by lot"
    )
    source: str = Field(
        min_length=1, max_length=200, description="Who reported it, e.g. replay:ge2024"
    )
    rehearsal: InputRehearsal = True

    @field_validator("declared_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("declared_at must carry a timezone offset")
        return value

    @model_validator(mode="after")
    def _arithmetic(self) -> Self:
        if not self.ballot_id.startswith(self.election_id.split(".", 1)[0] + "."):
            raise ValueError("ballot_id is not of the election's type")
        if self.ballot_id.rsplit(".", 1)[-1] != self.election_id.rsplit(".", 1)[-1]:
            raise ValueError("ballot_id is not of the election's date")
        ids = [c.person_id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("a candidate appears twice")
        elected = [c for c in self.candidates if c.elected]
        if self.kind is DeclarationKind.RECOUNT:
            if elected:
                raise figures_error("a recount notice cannot elect anyone")
            return self
        if len(elected) != 1:
            raise figures_error(f"exactly one candidate must be elected, found {len(elected)}")
        if self.kind is DeclarationKind.RUSH:
            return self
        self._check_full_figures(elected[0])
        return self

    def _check_full_figures(self, winner: Candidate) -> None:
        missing = [
            name
            for name in ("electorate", "valid_votes", "rejected_ballots")
            if getattr(self, name) is None
        ]
        if missing:
            raise figures_error(f"a {self.kind} needs {', '.join(missing)}")
        if len(self.candidates) < 1 or any(c.votes is None for c in self.candidates):
            raise figures_error(f"a {self.kind} needs every candidate's votes")
        votes = [c.votes or 0 for c in self.candidates]
        assert self.valid_votes is not None and self.electorate is not None
        if sum(votes) != self.valid_votes:
            raise figures_error(
                f"candidate votes add up to {sum(votes)}, not the valid votes {self.valid_votes}"
            )
        if self.valid_votes + (self.rejected_ballots or 0) > self.electorate:
            raise figures_error("ballots counted exceed the electorate")
        top = max(votes)
        if (winner.votes or 0) < top:
            raise figures_error("the elected candidate does not have the most votes")
        tied = sum(1 for v in votes if v == top)
        if tied > 1 and not self.tie_declared:
            raise figures_error("top candidates tie but no tie was declared")
        if tied == 1 and self.tie_declared:
            # A tie decided by lot where no one tied would hide a miscount behind the lot.
            raise figures_error("a tie was declared but no candidates tie on the most votes")

    @property
    def winner(self) -> Candidate | None:
        return next((c for c in self.candidates if c.elected), None)

    @property
    def has_full_figures(self) -> bool:
        return self.kind in FULL_FIGURE_KINDS

    @staticmethod
    def ballot_id_of(election_id: str, constituency_name: str) -> str:
        """The Democracy Club ballot id of a constituency in an election."""
        return ballot_id_for(election_id, slugify(constituency_name))
