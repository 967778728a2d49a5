"""Validation of raw feed messages: each is accepted, or rejected with a reason code."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.common import SCHEMA_VERSION
from schemas.declaration import FIGURES_ERROR, Declaration
from schemas.exit_poll import ExitPoll
from schemas.rejection import Rejection, RejectionReason
from streams.reference import Register


@dataclass(frozen=True)
class FeedPosition:
    """Where a raw message came from, so a rejection can point back at it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(frozen=True)
class Accepted:
    message: Declaration | ExitPoll


@dataclass(frozen=True)
class Rejected:
    rejection: Rejection


Verdict = Accepted | Rejected


class _Reject(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _summarise(exc: ValidationError) -> str:
    # One readable line per problem, capped: the desk reads this, not a stack trace.
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _parse(raw: bytes, register: Register) -> Declaration | ExitPoll:
    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Reject(RejectionReason.MALFORMED_JSON, f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise _Reject(RejectionReason.SCHEMA_VIOLATION, "a message must be a JSON object")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _Reject(
            RejectionReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION!r})",
        )
    election_id = payload.get("election_id")
    if election_id != register.election_id:
        raise _Reject(
            RejectionReason.WRONG_ELECTION,
            f"election_id {election_id!r} is not the election being processed "
            f"({register.election_id})",
        )
    model: type[Declaration] | type[ExitPoll]
    message_type = payload.get("message_type")
    if message_type == "declaration":
        model = Declaration
    elif message_type == "exit_poll":
        model = ExitPoll
    else:
        raise _Reject(RejectionReason.SCHEMA_VIOLATION, f"unknown message_type {message_type!r}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        if any(error["type"] == FIGURES_ERROR for error in exc.errors()):
            raise _Reject(RejectionReason.FIGURES_DO_NOT_ADD_UP, _summarise(exc)) from exc
        raise _Reject(RejectionReason.SCHEMA_VIOLATION, _summarise(exc)) from exc


def _check_against_register(declaration: Declaration, register: Register) -> None:
    seat = register.constituency(declaration.constituency_id)
    if seat is None:
        raise _Reject(
            RejectionReason.UNKNOWN_CONSTITUENCY,
            f"{declaration.constituency_id} ({declaration.constituency_name}) is not a "
            f"constituency of {register.election_id}",
        )
    if declaration.ballot_id != seat.ballot_id:
        raise _Reject(
            RejectionReason.UNKNOWN_CONSTITUENCY,
            f"ballot {declaration.ballot_id} does not match {seat.ons_id} ({seat.ballot_id})",
        )
    strangers = [c for c in declaration.candidates if c.person_id not in seat.candidates]
    if strangers:
        names = ", ".join(f"{c.name} ({c.person_id})" for c in strangers)
        raise _Reject(RejectionReason.UNKNOWN_CANDIDATE, f"not nominated in {seat.name}: {names}")
    if declaration.declared_at < register.polls_close:
        raise _Reject(
            RejectionReason.DECLARED_BEFORE_POLLS_CLOSED,
            f"declared at {declaration.declared_at.isoformat()}, before polls closed at "
            f"{register.polls_close.isoformat()}",
        )


def validate_message(
    raw: bytes, position: FeedPosition, register: Register, now: dt.datetime | None = None
) -> Verdict:
    """Decide one raw message's fate; never raises for bad input."""
    try:
        message = _parse(raw, register)
        if isinstance(message, Declaration):
            _check_against_register(message, register)
        return Accepted(message)
    except _Reject as reject:
        return Rejected(
            Rejection(
                reason=reject.reason,
                detail=reject.detail,
                original_b64=base64.b64encode(raw).decode("ascii"),
                original_key=position.key.decode("utf-8", "replace") if position.key else None,
                source_topic=position.topic,
                source_partition=position.partition,
                source_offset=position.offset,
                rejected_at=now or dt.datetime.now(dt.UTC),
                election_id=register.election_id,
            )
        )
