"""The exit poll: projected seats per party, published as polls close."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, NonNegativeInt, model_validator

from schemas.common import ElectionId, InputRehearsal, Message, PartyCode, SchemaVersion


class ExitPollProjection(Message):
    party: PartyCode = Field(description="Party abbreviation, or 'Others'")
    seats: NonNegativeInt


class ExitPoll(Message):
    schema_version: SchemaVersion = "1"
    message_type: Literal["exit_poll"] = "exit_poll"
    election_id: ElectionId
    published_at: dt.datetime
    total_seats: NonNegativeInt = 650
    projections: list[ExitPollProjection] = Field(min_length=1)
    source: str = Field(min_length=1, max_length=200)
    rehearsal: InputRehearsal = True

    @model_validator(mode="after")
    def _adds_up(self) -> ExitPoll:
        if self.published_at.utcoffset() is None:
            raise ValueError("published_at must carry a timezone offset")
        total = sum(p.seats for p in self.projections)
        if total != self.total_seats:
            raise ValueError(f"projected seats add up to {total}, not {self.total_seats}")
        return self
