"""Pieces shared by every message: schema version, base config, identifiers, parties."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from uk_election_ids.election_ids import IdBuilder

# Bumped on any change a consumer could notice; consumers reject versions they do not know.
SCHEMA_VERSION: Literal["1"] = "1"
SchemaVersion = Literal["1"]


class Message(BaseModel):
    """Base of every message: strict about unknown fields so a typo is a rejection, not a loss."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# uk-election-ids parses dates and slugs in Python: tens of microseconds a call, the bulk of
# validating a declaration. A night has a few thousand distinct ids, so each is judged once.
@lru_cache(maxsize=65_536)
def _check_election_id(value: str) -> str:
    try:
        builder = IdBuilder.from_id(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a Democracy Club election id: {value!r} ({exc})") from exc
    if builder.election_group_id != value:
        raise ValueError(f"{value!r} is a ballot id, not an election id")
    return value


@lru_cache(maxsize=65_536)
def _check_ballot_id(value: str) -> str:
    try:
        builder = IdBuilder.from_id(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a Democracy Club ballot id: {value!r} ({exc})") from exc
    if builder.ballot_id != value:
        raise ValueError(f"{value!r} is not a ballot id")
    return value


# Patterns for the published JSON Schema only: uk-election-ids stays the judge at runtime.
_ELECTION_ID_PATTERN = r"^[a-z]+(\.[a-z]+)?\.\d{4}-\d{2}-\d{2}$"
_BALLOT_ID_PATTERN = r"^[a-z]+(\.[a-z0-9-]+)+\.\d{4}-\d{2}-\d{2}$"

ElectionId = Annotated[
    str,
    AfterValidator(_check_election_id),
    Field(
        description="Democracy Club election id, e.g. parl.2024-07-04",
        examples=["parl.2024-07-04"],
        json_schema_extra={"pattern": _ELECTION_ID_PATTERN},
    ),
]
BallotId = Annotated[
    str,
    AfterValidator(_check_ballot_id),
    Field(
        description="Democracy Club ballot id, e.g. parl.houghton-and-sunderland-south.2024-07-04",
        examples=["parl.houghton-and-sunderland-south.2024-07-04"],
        json_schema_extra={"pattern": _BALLOT_ID_PATTERN},
    ),
]
ConstituencyId = Annotated[
    str,
    Field(
        pattern=r"^[ENSW]\d{8}$",
        description="ONS constituency id (2024 boundaries), e.g. E14001290",
        examples=["E14001290"],
    ),
]
PartyCode = Annotated[
    str,
    Field(
        min_length=1, max_length=16, description="Party abbreviation as the Commons Library uses it"
    ),
]
AwareDatetime = Annotated[dt.datetime, Field(description="ISO 8601 with a UTC offset")]
# Strict: only JSON true or false. Inputs default to true, as PA and AP flag their test data:
# a message that does not say it is the live night's is taken for a rehearsal's.
InputRehearsal = Annotated[
    bool,
    Field(
        strict=True,
        description="A rehearsal's message (true, the default) or the live night's (false, "
        "which a producer must say). A worker takes only those of its mode (ELECTION_MODE) and "
        "dead-letters the others as wrong_mode",
    ),
]
Rehearsal = Annotated[
    bool,
    Field(
        description="Made in a rehearsal (true) or on the live night (false): never show a "
        "rehearsal's output to the public as live"
    ),
]


def election_date(election_id: str) -> dt.date:
    """The polling day of a Democracy Club election id."""
    return dt.date.fromisoformat(election_id.rsplit(".", 1)[-1])


def ballot_id_for(election_id: str, constituency_slug: str) -> str:
    """Build a ballot id with uk-election-ids, which checks the slug and the election type.

    Checked again as a message's would be: the check is cached, so a register built at
    start leaves none of its seats to check on the night's path, where uk-election-ids took
    20 µs of a declaration's validation the first time its seat came (and again in the
    publisher for its result).
    """
    election_type = election_id.split(".", 1)[0]
    built = (
        IdBuilder(election_type, election_date(election_id))
        .with_division(constituency_slug)
        .ballot_id
    )
    return _check_ballot_id(built)


class Party(Message):
    """A party as the Electoral Commission registers it; independents have no EC id."""

    ec_id: str | None = Field(None, description="Electoral Commission id, e.g. PP53; none for Ind")
    abbreviation: PartyCode
    name: str = Field(min_length=1)
