"""A source conflict: two sources disagree on a seat; for the newsroom, never for app users."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from schemas.common import (
    ConstituencyId,
    ElectionId,
    Message,
    PartyCode,
    Rehearsal,
    SchemaVersion,
)


class SourceCandidate(Message):
    person_id: PositiveInt = Field(description="Democracy Club person id")
    name: str
    party: PartyCode | None = None
    votes: NonNegativeInt | None = Field(None, description="None in a rush or recount notice")


class SourceFigures(Message):
    """What one source last said of the seat."""

    source: str = Field(description="The source, as precedence names it: pa, desk, replay...")
    revision: PositiveInt = Field(description="The source's own revision of the seat")
    kind: str = Field(description="rush, result, recount or correction")
    declared_at: dt.datetime
    winner: SourceCandidate | None = None
    majority: NonNegativeInt | None = Field(None, description="With full figures only")
    candidates: list[SourceCandidate] = Field(default_factory=list)


class FieldDifference(Message):
    """One thing the two sources give differently, with each source's value."""

    field: str = Field(
        description="winner, majority, declared_at, or votes:<person id> for a candidate's votes"
    )
    label: str = Field(description="Readable, for the desk: e.g. 'votes of Liz Truss (Con)'")
    values: dict[str, int | str | None] = Field(description="Source -> its value")


class SourceConflict(Message):
    """Two sources' latest revisions of a seat disagree (open), or no longer do (resolved)."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["source_conflict"] = "source_conflict"
    election_id: ElectionId
    rehearsal: Rehearsal
    conflict_id: str = Field(
        description="The two sources and their revisions: a resolution repeats its conflict's"
    )
    status: Literal["open", "resolved"]
    resolution: Literal["agreed", "superseded"] | None = Field(
        None,
        description=(
            "How it ended: the sources now agree, or a newer revision of one of them disagrees "
            "anew (and opens a conflict of its own)"
        ),
    )
    constituency_id: ConstituencyId
    constituency_name: str
    on_air: str | None = Field(description="The source whose figures count, by precedence")
    sources: list[SourceFigures] = Field(description="The two sources, higher precedence first")
    differences: list[FieldDifference]
    sequence: NonNegativeInt = Field(description="The change that opened or ended it")
