"""An audit record: who did what to the night's state, when, and what it was before and after."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from schemas.common import ElectionId, Message, Rehearsal, SchemaVersion


class Role(StrEnum):
    """What a person at the desk may do; each role may do everything of the ones before it."""

    VIEWER = "viewer"  # reads the desk
    EDITOR = "editor"  # approves, edits, kills, corrects
    ADMIN = "admin"  # also resets, rebuilds, and gives and revokes tokens


class AuditAction(StrEnum):
    RESET = "reset"  # an election's Redis state deleted
    REBUILD = "rebuild"  # an election's Redis state re-made from the Kafka log
    TOKEN_ADD = "token_add"
    TOKEN_REVOKE = "token_revoke"
    CORRECTION = "correction"  # a seat's result entered or corrected by hand (source desk)
    APPROVE = "approve"  # a held alert sent as it was made
    EDIT = "edit"  # a held alert sent with its headline or body edited (`before`: as made)
    KILL = "kill"  # a held alert never to be sent
    AUTO_RELEASE = "auto_release"  # a held alert sent when its time on the desk ran out
    OVERRIDE = "override"  # a seat's call held ("do not call this seat yet") or let go


class AuditStage(StrEnum):
    # Written, and acknowledged by every in-sync copy, before the action takes effect: an
    # intended record with no outcome under its action_id is an action the worker died in.
    INTENDED = "intended"
    DONE = "done"
    FAILED = "failed"  # it began and raised: `detail` says why; it may have partly taken effect
    REFUSED = "refused"  # checked and turned down before anything changed: `detail` says why


class AuditRecord(Message):
    """One step of one action on the record: its intent, then its outcome, under one id."""

    schema_version: SchemaVersion = "1"
    message_type: Literal["audit"] = "audit"
    election_id: ElectionId
    rehearsal: Rehearsal
    action_id: str = Field(description="Names the action: its intent and its outcome share it")
    stage: AuditStage
    action: AuditAction
    who: str = Field(
        description="The person's name, never a token: a desk token's name, bootstrap-admin "
        "for ELECTION_ADMIN_TOKEN, or console:<user> for the console commands "
        "(election-desk-tokens, election-reset, election-rebuild)"
    )
    role: Role = Field(description="The role the person acted with")
    at: dt.datetime = Field(description="When this record was written")
    target: str = Field(
        description="What the action is on: an ONS id, a person's name, an election id"
    )
    before: dict[str, Any] | None = Field(None, description="What it was, as far as it matters")
    after: dict[str, Any] | None = Field(None, description="What it was to be, or became")
    detail: str | None = Field(None, description="Why it was refused or failed, readable")
