"""Outputs for graphics: one seat's result per applied revision, and the state of the parties."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from schemas.common import (
    BallotId,
    ConstituencyId,
    ElectionId,
    Message,
    PartyCode,
    Rehearsal,
    SchemaVersion,
)
from schemas.declaration import DeclarationKind

Share = float  # a fraction in [0, 1]; graphics format it as a percentage


class CandidateResult(Message):
    person_id: PositiveInt
    name: str
    party: PartyCode
    party_name: str
    votes: NonNegativeInt | None = None
    share: float | None = Field(None, ge=0, le=1)
    share_change: float | None = Field(
        None, description="Change in share against the notional 2019 result, as a fraction"
    )
    elected: bool = False


class SeatResult(Message):
    """A seat as it stands after one applied revision (published to the results topic)."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["seat_result"] = "seat_result"
    election_id: ElectionId
    ballot_id: BallotId
    constituency_id: ConstituencyId
    constituency_name: str
    kind: DeclarationKind
    revision: PositiveInt
    source: str | None = Field(
        None, description="Whose figures these are, when several sources report: pa, desk..."
    )
    declared_at: dt.datetime
    sequence: NonNegativeInt = Field(description="State sequence number after this was applied")
    figures_pending: bool = Field(description="A rush: winner known, votes to follow")
    recount: bool = Field(description="A recount has been announced and not yet concluded")
    winning_party: PartyCode | None = None
    winner: CandidateResult | None = None
    tie: bool = False
    previous_party: PartyCode | None = Field(None, description="Notional 2019 winner")
    gain: bool = False
    result_label: str | None = Field(None, description="e.g. 'Lab gain from Con', 'SNP hold'")
    electorate: NonNegativeInt | None = None
    valid_votes: NonNegativeInt | None = None
    rejected_ballots: NonNegativeInt | None = None
    turnout: float | None = Field(None, ge=0, le=1)
    majority: NonNegativeInt | None = None
    majority_share: float | None = Field(None, ge=0, le=1)
    swing: float | None = Field(
        None,
        description="Butler swing in points from the runner-up's party to the winner's, vs 2019",
    )
    swing_from: PartyCode | None = None
    candidates: list[CandidateResult] = Field(default_factory=list)
    # Not among sequence..winning_party: the stored result is spliced there by Lua.
    rehearsal: Rehearsal


class PartyTally(Message):
    party: PartyCode
    name: str
    seats: NonNegativeInt = 0
    gains: NonNegativeInt = 0
    losses: NonNegativeInt = 0
    seats_change: int = Field(0, description="Gains minus losses against notional 2019")
    votes: NonNegativeInt = 0
    share: float = Field(0.0, ge=0, le=1)
    share_change: float | None = Field(
        None, description="Change in share in declared seats against notional 2019"
    )


class ProjectedParty(Message):
    party: PartyCode
    seats: NonNegativeInt = Field(description="Seats won so far plus undeclared seats projected")
    low: NonNegativeInt = Field(description="5th percentile over resamples of the declared seats")
    high: NonNegativeInt = Field(description="95th percentile over resamples of the declared seats")
    declared: NonNegativeInt = Field(description="Seats already won")
    exit_poll: NonNegativeInt | None = Field(
        None, description="The exit poll's seats for this party, where it named the party"
    )


class SeatProjection(Message):
    """Where the declared results point if the swing seen so far held in every seat to come."""

    model: Literal["uniform", "regional"] = Field(
        description="uniform: the average change of every declared seat; regional: of the "
        "seat's region once enough of it declared, else its nation's, else the national one"
    )
    seats_declared: NonNegativeInt
    seats_with_figures: NonNegativeInt = Field(
        description="Declared seats with figures: the changes the projection rests on"
    )
    swing_from: dict[str, NonNegativeInt] = Field(
        default_factory=dict,
        description="Undeclared seats by the swing applied: region, nation or national",
    )
    as_of: dt.datetime | None = Field(None, description="Declaration time of the latest change")
    parties: list[ProjectedParty] = Field(default_factory=list)


class StateOfParties(Message):
    """The national picture after a change (published to the state-of-parties topic)."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["state_of_parties"] = "state_of_parties"
    election_id: ElectionId
    rehearsal: Rehearsal
    sequence: NonNegativeInt = Field(description="Increases by one with every applied revision")
    as_of: dt.datetime | None = Field(None, description="Declaration time of the latest change")
    total_seats: PositiveInt = 650
    majority_line: PositiveInt = 326
    seats_declared: NonNegativeInt = 0
    seats_with_figures: NonNegativeInt = Field(0, description="Seats declared with full figures")
    total_votes: NonNegativeInt = 0
    electorate_declared: NonNegativeInt = 0
    turnout: float | None = Field(None, ge=0, le=1)
    largest_party: PartyCode | None = None
    majority_party: PartyCode | None = None
    cannot_be_overtaken: PartyCode | None = Field(
        None,
        description=(
            "The party no rival can finish above, a tie at worst (one seat before the largest "
            "party is certain, which is the alert): a flag for graphics"
        ),
    )
    last_constituency_id: ConstituencyId | None = None
    parties: list[PartyTally] = Field(default_factory=list)
    projection: SeatProjection | None = Field(
        None, description="Where the declared results point (none before a seat has figures)"
    )
