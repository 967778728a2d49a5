"""The newsroom desk over HTTP: alerts held for an editor, decisions on them, held calls."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from schemas.alert import Alert
from schemas.common import Message

HoldReason = Literal["seat_not_called", "amends_killed", "amends_held", "policy"]
Decision = Literal["approve", "edit", "kill", "auto_release"]


class HeldAlert(Message):
    """An alert waiting on the desk: it reaches no app user until an editor (or its time)
    sends it."""

    alert: Alert
    held_at: dt.datetime
    release_at: dt.datetime | None = Field(
        None, description="When it goes by itself unless an editor acts; null: it waits"
    )
    reason: HoldReason
    reason_text: str


class DeskAction(Message):
    """One thing done at the desk, newest first in its list: a decision on a held alert, or
    a seat's call held or let go (action `override`)."""

    action: Literal["approve", "edit", "kill", "auto_release", "override"]
    by: str = Field(description="The person's name (auto-release for the clock)")
    at: dt.datetime
    alert_id: str | None = None
    headline: str | None = Field(None, description="The headline as it went out, or as held")
    original_headline: str | None = Field(None, description="For an edit: as it was made")
    constituency_id: str | None = None
    detail: str | None = Field(None, description="A kill's reason, or a call held's note")


class CallHeld(Message):
    """A seat an editor said not to call yet: every alert about it waits on the desk."""

    constituency_id: str
    constituency_name: str
    by: str
    at: dt.datetime
    note: str = ""


class DeskQueue(Message):
    """Everything the desk page shows, as GET /api/desk/queue and each /api/desk/events event."""

    mode: Literal["rehearsal", "live"]
    now: dt.datetime
    version: int = Field(description="Grows with every change of the desk's holds and actions")
    held: list[HeldAlert] = Field(description="Oldest first")
    calls_held: list[CallHeld]
    actions: list[DeskAction] = Field(description="Newest first, the latest 50")
    conflicts: list[dict[str, Any]] = Field(
        description="Seats whose sources disagree: each as GET /api/desk/seats/{id}/sources"
    )
