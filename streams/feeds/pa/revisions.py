"""Which of our kinds a PA seat file is, given what was taken from PA for its seat before.

PA has no correction message: a result with a higher revision than an earlier result of
the same seat replaces it, which our declarations call a correction (as the replay does).
A revision at or below one already taken is refused: PA re-sends files, and an older one
arriving late must not look new.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.declaration import DeclarationKind
from streams.feeds.pa.messages import PaMessageType, PaSeatMessage
from streams.feeds.pa.refusals import Refusal, RefusalReason

_KINDS = {
    PaMessageType.RUSH: DeclarationKind.RUSH,
    PaMessageType.RESULT: DeclarationKind.RESULT,
    PaMessageType.RECOUNT: DeclarationKind.RECOUNT,
}


@dataclass(frozen=True)
class SeatTaken:
    """What the ingest has taken from PA for one seat so far."""

    revision: int
    has_result: bool  # a result with figures, which a later result corrects


def declaration_kind(taken: SeatTaken | None, message: PaSeatMessage) -> DeclarationKind | Refusal:
    """The kind of declaration `message` makes after `taken`, or why it is refused."""
    seat = message.constituency.number
    if taken is not None and message.revision == taken.revision:
        return Refusal(
            RefusalReason.PA_REVISION_ALREADY_INGESTED,
            f"seat {seat} revision {message.revision} was already taken",
        )
    if taken is not None and message.revision < taken.revision:
        return Refusal(
            RefusalReason.PA_STALE_REVISION,
            f"seat {seat} revision {message.revision} is older than revision {taken.revision} "
            "already taken",
        )
    kind = _KINDS[message.message_type]
    if kind is DeclarationKind.RESULT and taken is not None and taken.has_result:
        return DeclarationKind.CORRECTION
    return kind


def after_taking(taken: SeatTaken | None, message: PaSeatMessage) -> SeatTaken:
    """What is known of the seat once `message` has been taken."""
    had_result = taken is not None and taken.has_result
    return SeatTaken(
        revision=message.revision,
        has_result=had_result or message.message_type is PaMessageType.RESULT,
    )
