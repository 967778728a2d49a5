"""A feed's national totals that disagree with our own tallies; for the newsroom, never for apps."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, NonNegativeInt

from schemas.common import ElectionId, Message, PartyCode, Rehearsal, SchemaVersion

Figure = Literal["seats", "gains", "losses", "votes"]


class FigureDifference(Message):
    figure: Figure
    feed: NonNegativeInt = Field(description="The feed's figure (0 where it lists none)")
    ours: NonNegativeInt = Field(description="Our tallies' figure (0 where they have none)")


class PartyDifference(Message):
    """One party whose figures differ, or whose feed id the feed's mapping does not know."""

    party: PartyCode | None = Field(
        description="Our party code; none for a feed party id the feed's mapping does not know"
    )
    feed_party_id: int | None = Field(
        description="The feed's party id; none for a party of ours the feed does not list"
    )
    name: str
    figures: list[FigureDifference] = Field(
        description="The figures that differ; a party id the mapping does not know is listed "
        "even when none does, since it could not be checked"
    )


class FeedCheck(Message):
    """A feed's state of the parties checked against ours at the same declared seats."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["feed_check"] = "feed_check"
    election_id: ElectionId
    rehearsal: Rehearsal
    source: str = Field(description="The feed checked, e.g. pa:rehearsal")
    file_name: str = Field(description="The feed's file that was checked (its first 512 bytes)")
    feed_revision: NonNegativeInt = Field(description="The feed's number for its state")
    seats_declared: NonNegativeInt = Field(description="Declared seats in both, when compared")
    our_sequence: NonNegativeInt = Field(description="The sequence of our state compared")
    differences: list[PartyDifference] = Field(min_length=1)
    checked_at: dt.datetime
