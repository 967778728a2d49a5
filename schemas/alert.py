"""An alert: one moment of the night, for newsrooms and push notifications."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import Field, NonNegativeInt

from schemas.common import ElectionId, Message, Rehearsal, SchemaVersion


class AlertPriority(StrEnum):
    FLASH = "flash"  # interrupt programming / push to everyone
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for flash, 3 for low: sorting by rank puts the loudest first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    AlertPriority.FLASH: 0,
    AlertPriority.HIGH: 1,
    AlertPriority.NORMAL: 2,
    AlertPriority.LOW: 3,
}


class AlertType(StrEnum):
    EXIT_POLL = "exit_poll"
    FIRST_DECLARATION = "first_declaration"
    LAST_DECLARATION = "last_declaration"
    LARGEST_PARTY_CERTAIN = "largest_party_certain"
    CANNOT_BE_OVERTAKEN = "cannot_be_overtaken"
    MAJORITY_WON = "majority_won"
    PRIME_MINISTER_RESULT = "prime_minister_result"
    FORMER_PRIME_MINISTER_DEFEATED = "former_prime_minister_defeated"
    CABINET_MINISTER_DEFEATED = "cabinet_minister_defeated"
    ATTENDING_CABINET_MINISTER_DEFEATED = "attending_cabinet_minister_defeated"
    SHADOW_CABINET_DEFEATED = "shadow_cabinet_defeated"
    PARTY_LEADER_RESULT = "party_leader_result"
    FORMER_PARTY_LEADER_RESULT = "former_party_leader_result"
    SEAT_GAIN = "seat_gain"
    SHOCK_GAIN = "shock_gain"
    NARROW_MARGIN = "narrow_margin"
    RECOUNT = "recount"
    AMENDED = "amended"
    RETRACTED = "retracted"
    PROJECTION_DEPARTS_EXIT_POLL = "projection_departs_exit_poll"
    PROJECTION_BACK_IN_LINE = "projection_back_in_line"


# Who an alert is for: app users and the public (the alerts topic, webhooks, the event
# streams), or the newsroom alone (the newsroom topic).
Audience = Literal["public", "newsroom"]


class AlertTrigger(Message):
    ballot_id: str
    constituency_id: str
    revision: int


class Alert(Message):
    schema_version: SchemaVersion = "1"
    message_type: Literal["alert"] = "alert"
    alert_id: str = Field(description="Deterministic: the same event always gets the same id")
    election_id: ElectionId
    rehearsal: Rehearsal
    type: AlertType
    priority: AlertPriority
    headline: str = Field(min_length=1, max_length=140)
    body: str
    occurred_at: dt.datetime = Field(description="Declaration time of the triggering event")
    constituency_id: str | None = None
    constituency_name: str | None = None
    person_id: int | None = None
    party: str | None = None
    triggered_by: AlertTrigger | None = None
    figures: dict[str, int | float | str | None] = Field(default_factory=dict)
    supersedes: list[str] = Field(
        default_factory=list,
        description=(
            "For an amendment, a retraction, or a fact told again after a correction: every id "
            "the fact may have been told under before, the first one first; delete them all, "
            "or keep the latest alert per first id"
        ),
    )
    replaces_type: AlertType | None = Field(
        None, description="For an amended or retracted alert: the type of the alert it replaces"
    )
    audience: Audience = Field(
        "public",
        description=(
            "public: on the alerts topic, for apps and push; newsroom: on the newsroom topic "
            "only, never sent to app users"
        ),
    )
    sequence: NonNegativeInt | None = Field(None, description="Position in the alerts outbox")
