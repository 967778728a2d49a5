"""A rejected message, as published to the dead-letter topic with the original bytes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.common import Message, Rehearsal, SchemaVersion


class RejectionReason(StrEnum):
    MESSAGE_TOO_LARGE = "message_too_large"
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    FIGURES_DO_NOT_ADD_UP = "figures_do_not_add_up"
    UNKNOWN_CONSTITUENCY = "unknown_constituency"
    UNKNOWN_CANDIDATE = "unknown_candidate"
    CANDIDATE_MISMATCH = "candidate_mismatch"
    UNKNOWN_PARTY = "unknown_party"
    DECLARED_BEFORE_POLLS_CLOSED = "declared_before_polls_closed"
    # Dated after ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE, or more than
    # ELECTION_DECLARED_AT_FUTURE_MARGIN_S
    # after the message was sent; an exit poll by its published_at.
    DECLARED_AFTER_NIGHT_ENDED = "declared_after_night_ended"
    DECLARED_IN_FUTURE = "declared_in_future"
    WRONG_ELECTION = "wrong_election"
    # A rehearsal's message reached a live worker, or the live night's a rehearsal's
    # (ELECTION_MODE): tallied, it would mix a rehearsal into the night or the reverse.
    WRONG_MODE = "wrong_mode"
    # Keyed by another constituency than the one it declares: it went to that seat's partition,
    # where its order against the seat's own messages is lost.
    KEY_MISMATCH = "key_mismatch"
    REVISION_CONFLICT = "revision_conflict"
    # Far past the seat's revision (ELECTION_MAX_REVISION_JUMP): applied, it would supersede
    # all later ones.
    REVISION_JUMP = "revision_jump"


class Rejection(Message):
    schema_version: SchemaVersion = "1"
    message_type: Literal["rejection"] = "rejection"
    reason: RejectionReason
    detail: str = Field(description="Readable reason, for the person on the desk")
    original_b64: str = Field(
        description="The message value exactly as received, base64; for message_too_large "
        "only its first bytes (the detail gives its size and sha256)"
    )
    original_key: str | None = Field(None, description="The message key (its first 512 bytes)")
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: dt.datetime
    election_id: str = Field(description="The election the worker was processing")
    rehearsal: Rehearsal
