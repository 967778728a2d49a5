"""Validation of raw feed messages: each is accepted, or rejected with a reason code."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.common import SCHEMA_VERSION, Party
from schemas.declaration import FIGURES_ERROR, Candidate, Declaration
from schemas.exit_poll import ExitPoll
from schemas.rejection import Rejection, RejectionReason
from streams.rules.reference import CandidateRef, Register
from streams.rules.rehearsal import Mode, mode_of

log = logging.getLogger(__name__)

# A dead letter must stay far below the broker's message limit (1 MiB by default) whatever
# arrived: an oversized message keeps only this much of itself (with its size and sha256),
# a key only MAX_KEY_BYTES, and a reason only MAX_DETAIL_CHARS.
KEPT_PREFIX_BYTES = 4096
MAX_KEY_BYTES = 512
MAX_DETAIL_CHARS = 2000
# The exit poll's line for everyone outside the named parties.
OTHERS = "Others"


@dataclass(frozen=True)
class FeedPosition:
    """Where a raw message came from, so a rejection can point back at it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    # The record's Kafka timestamp: when it was sent (or appended, on a LogAppendTime topic).
    sent_at: dt.datetime | None = None


# As ELECTION_MAX_MESSAGE_BYTES: the largest message validated; a larger one is a dead letter.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024

# How far past a seat's revision (0 before its first) a declaration may go: a feed's
# corrections go up one at a time, while a revision typed a million ahead would leave every
# genuine correction after it superseded. Settings.max_revision_jump (ELECTION_MAX_REVISION_JUMP).
DEFAULT_MAX_REVISION_JUMP = 100


@dataclass(frozen=True)
class NightWindow:
    """How far from the election a declaration (or the exit poll) can believably be dated."""

    # Defaults as ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE and
    # ELECTION_DECLARED_AT_FUTURE_MARGIN_S.
    ends_after_polls_close: dt.timedelta = dt.timedelta(hours=72)
    future_margin: dt.timedelta = dt.timedelta(seconds=300)


def kafka_time(seconds: float | None) -> dt.datetime | None:
    """A record's Kafka timestamp (seconds since the epoch) as a time; None when it has none."""
    # Kafka writes -1 for a record without a timestamp (message format v0).
    if seconds is None or seconds <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        # A producer may stamp any 64-bit time; one past the year 9999 is later than the
        # wall clock that caps it anyway, and must not stop the worker.
        return None


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


# orjson reads an integer literal past 64 bits as a float, which the model then takes rounded;
# pydantic's JSON reader keeps it exact. A declaration with such a person id takes the general
# path, so it is judged as it always was.
_ORJSON_EXACT_INT_MAX = 2**64 - 1
_MUST_SAY = frozenset({"schema_version", "message_type"})


def _parse(raw: bytes, register: Register) -> Declaration | ExitPoll:
    # A valid declaration of this election is nearly every message: validated from the bytes
    # in one pass, it skips building a dict first. Anything else (an exit poll, a fault) takes
    # the general path, which alone decides what is wrong and says so.
    try:
        declaration = Declaration.model_validate_json(raw)
    except ValidationError:
        return _parse_general(raw, register)
    if (
        # The model defaults what the general path insists a message says.
        not declaration.model_fields_set >= _MUST_SAY
        or declaration.election_id != register.election_id
        or any(c.person_id > _ORJSON_EXACT_INT_MAX for c in declaration.candidates)
    ):
        return _parse_general(raw, register)
    return declaration


def _parse_general(raw: bytes, register: Register) -> Declaration | ExitPoll:
    if not raw:
        raise _Reject(RejectionReason.MALFORMED_JSON, "empty message")
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


def _check_mode(message: Declaration | ExitPoll, mode: Mode) -> None:
    """A worker tallies only its own mode's messages: a rehearsal's result in the live night's
    tallies would reach the public, and the live night's in a rehearsal would be lost."""
    sent_as = mode_of(message.rehearsal)
    if sent_as == mode:
        return
    what = (
        f"{message.constituency_name} ({message.constituency_id}) revision {message.revision}"
        if isinstance(message, Declaration)
        else "the exit poll"
    )
    raise _Reject(
        RejectionReason.WRONG_MODE,
        f"{what} is a {sent_as} message (rehearsal: {str(message.rehearsal).lower()}) and "
        f"this worker is {mode} (ELECTION_MODE={mode}); not taken",
    )


def _check_against_register(declaration: Declaration, register: Register) -> None:
    seat = register.constituency(declaration.constituency_id)
    if seat is None:
        raise _Reject(
            RejectionReason.UNKNOWN_CONSTITUENCY,
            f"{declaration.constituency_id} ({declaration.constituency_name!r}) is not a "
            f"constituency of {register.election_id}",
        )
    if declaration.ballot_id != seat.ballot_id:
        raise _Reject(
            RejectionReason.UNKNOWN_CONSTITUENCY,
            f"ballot {declaration.ballot_id} does not match {seat.ons_id} ({seat.ballot_id})",
        )
    if not _same_name(declaration.constituency_name, seat.name):
        raise _Reject(
            RejectionReason.UNKNOWN_CONSTITUENCY,
            f"{seat.ons_id} is {seat.name!r}, not {declaration.constituency_name!r}",
        )
    strangers = [c for c in declaration.candidates if c.person_id not in seat.candidates]
    if strangers:
        names = ", ".join(f"{c.name!r} ({c.person_id})" for c in strangers)
        raise _Reject(RejectionReason.UNKNOWN_CANDIDATE, f"not nominated in {seat.name}: {names}")
    # The feed's names and parties are what graphics show and what the tallies count, so
    # they must be the nomination's: a person id with another party or name is a wrong row.
    mismatched = [
        c for c in declaration.candidates if not _as_nominated(c, seat.candidates[c.person_id])
    ]
    if mismatched:
        described = "; ".join(_mismatch(c, seat.candidates[c.person_id]) for c in mismatched)
        raise _Reject(RejectionReason.CANDIDATE_MISMATCH, f"in {seat.name}: {described}")
    if declaration.declared_at < register.polls_close:
        raise _Reject(
            RejectionReason.DECLARED_BEFORE_POLLS_CLOSED,
            f"declared at {declaration.declared_at.isoformat()}, before polls closed at "
            f"{register.polls_close.isoformat()}",
        )


def _name_key(name: str) -> str:
    # Spelling a feed may legitimately vary (case, spacing, composed accents) compares equal;
    # anything else (markup, control or direction characters) does not.
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _same_name(sent: str, known: str) -> bool:
    # Nearly every name is sent exactly as the register has it: equal strings need no keys.
    return sent == known or _name_key(sent) == _name_key(known)


def _same_party(sent: Party, nominated: Party) -> bool:
    # pydantic's == spends microseconds a candidate on generic, private and extra fields a
    # Party never has: the same fields of the same model are equal, anything else asks ==.
    return (
        type(sent) is type(nominated) and sent.__dict__ == nominated.__dict__
    ) or sent == nominated


def _as_nominated(candidate: Candidate, nominated: CandidateRef) -> bool:
    return _same_party(candidate.party, nominated.party) and _same_name(
        candidate.name, nominated.name
    )


def _mismatch(candidate: Candidate, nominated: CandidateRef) -> str:
    return (
        f"{candidate.person_id} sent as {candidate.name!r} ({candidate.party.abbreviation!r}), "
        f"nominated as {nominated.name!r} ({nominated.party.abbreviation})"
    )


@dataclass(frozen=True)
class _SentAt:
    """The time a message's own time is judged against, and what that time was."""

    at: dt.datetime
    what: str  # "sent" (its Kafka timestamp) or "received" (the wall clock)


def _sent_at(position: FeedPosition, now: dt.datetime) -> _SentAt:
    # The record's own timestamp makes the verdict the same when a rebuild re-reads the log
    # days later, and judges a backlog by when each message was sent, not when it was read;
    # the wall clock caps it, so a producer whose clock runs ahead cannot vouch for itself.
    if position.sent_at is not None and position.sent_at <= now:
        return _SentAt(position.sent_at, "sent")
    return _SentAt(now, "received")


def _check_within_night(
    dated: dt.datetime, what: str, register: Register, window: NightWindow, sent_at: _SentAt
) -> None:
    """A time after the night, or ahead of when its message was sent, is a wrong clock or a
    typo; applied, it would be the night's latest moment and the state's "as of" for good."""
    night_ends = register.polls_close + window.ends_after_polls_close
    if dated > night_ends:
        raise _Reject(
            RejectionReason.DECLARED_AFTER_NIGHT_ENDED,
            f"{what} {dated.isoformat()}, after the night ended at {night_ends.isoformat()} "
            f"({_hours(window.ends_after_polls_close)} hours after polls closed; "
            "ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE)",
        )
    if dated > sent_at.at + window.future_margin:
        # Shown in the message's own offset, so the desk compares like with like.
        sent = sent_at.at.astimezone(dated.tzinfo)
        raise _Reject(
            RejectionReason.DECLARED_IN_FUTURE,
            f"{what} {dated.isoformat()}, {_duration(dated - sent_at.at)} after it was "
            f"{sent_at.what} at {sent.isoformat()}; more than the "
            f"{window.future_margin.total_seconds():g} s allowed "
            f"(ELECTION_DECLARED_AT_FUTURE_MARGIN_S)",
        )


def _hours(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}"


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days} day{'s' if days > 1 else ''} {clock}" if days else clock


def _check_exit_poll(exit_poll: ExitPoll, register: Register) -> None:
    if exit_poll.total_seats != register.total_seats:
        raise _Reject(
            RejectionReason.SCHEMA_VIOLATION,
            f"exit poll projects {exit_poll.total_seats} seats, the election has "
            f"{register.total_seats}",
        )
    unknown = [
        p.party
        for p in exit_poll.projections
        if p.party not in register.parties and p.party != OTHERS
    ]
    if unknown:
        raise _Reject(
            RejectionReason.UNKNOWN_PARTY,
            f"exit poll names parties not standing in {register.election_id}: "
            + ", ".join(repr(code) for code in unknown),
        )


def _too_large(raw: bytes, key: bytes | None, limit: int) -> _Reject | None:
    size = len(raw) + len(key or b"")
    if size <= limit:
        return None
    return _Reject(
        RejectionReason.MESSAGE_TOO_LARGE,
        f"{size} bytes (key and value) is over the {limit}-byte limit "
        f"(ELECTION_MAX_MESSAGE_BYTES); "
        f"original_b64 holds the first {KEPT_PREFIX_BYTES} bytes of the value only, "
        f"which is {len(raw)} bytes with sha256 {hashlib.sha256(raw).hexdigest()}",
    )


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter is sent with: the original, cut to MAX_KEY_BYTES."""
    return key[:MAX_KEY_BYTES] if key is not None else None


def _check_key(declaration: Declaration, key: bytes | None) -> None:
    """A declaration is keyed by its own ONS id, so every message of a seat shares one
    partition and its order; one keyed by another seat is refused (a message sent with no key
    is taken: it names no other seat)."""
    if key is not None and key != declaration.constituency_id.encode():
        shown = key[:40].decode("utf-8", "backslashreplace")
        raise _Reject(
            RejectionReason.KEY_MISMATCH,
            f"keyed {shown!r} but declares {declaration.constituency_name} "
            f"({declaration.constituency_id}); send it keyed by {declaration.constituency_id}",
        )


def validate_message(
    raw: bytes,
    position: FeedPosition,
    register: Register,
    now: dt.datetime | None = None,
    max_bytes: int | None = None,
    window: NightWindow | None = None,
    mode: Mode = "rehearsal",
) -> Verdict:
    """Decide one raw message's fate; never raises for bad input.

    `max_bytes` (default ELECTION_MAX_MESSAGE_BYTES) is checked before anything is parsed. `window`
    (default from ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE and
    ELECTION_DECLARED_AT_FUTURE_MARGIN_S) bounds
    the message's own time; "in the future" is measured from `position.sent_at`, or from
    `now` (when it is judged, default the wall clock) for a record without one or stamped
    later than that. `mode` (ELECTION_MODE) is the only kind of message taken, a rehearsal's
    or the live night's.
    """
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_MESSAGE_BYTES
    window = window if window is not None else NightWindow()
    now = now if now is not None else dt.datetime.now(dt.UTC)
    sent_at = _sent_at(position, now)
    kept = raw
    try:
        oversized = _too_large(raw, position.key, limit)
        if oversized is not None:
            kept = raw[:KEPT_PREFIX_BYTES]
            raise oversized
        message = _parse(raw, register)
        _check_mode(message, mode)
        if isinstance(message, Declaration):
            _check_against_register(message, register)
            _check_key(message, position.key)
            _check_within_night(message.declared_at, "declared at", register, window, sent_at)
        else:
            _check_exit_poll(message, register)
            _check_within_night(
                message.published_at, "exit poll published at", register, window, sent_at
            )
        return Accepted(message)
    except RecursionError:
        reject = _Reject(RejectionReason.MALFORMED_JSON, "nested too deeply to read")
    except _Reject as rejected:
        reject = rejected
    except Exception as error:
        # A validator that trips over input nobody foresaw must cost one message, not the
        # worker: it is dead-lettered with what went wrong, and logged for a fix.
        log.exception(
            "validation failed unexpectedly at %s[%d]@%d",
            position.topic,
            position.partition,
            position.offset,
        )
        reject = _Reject(
            RejectionReason.SCHEMA_VIOLATION,
            f"could not be validated: {type(error).__name__}: {error}",
        )
    detail = reject.detail
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    key = dead_letter_key(position.key)
    return Rejected(
        Rejection(
            reason=reject.reason,
            detail=detail,
            original_b64=base64.b64encode(kept).decode("ascii"),
            original_key=key.decode("utf-8", "replace") if key else None,
            source_topic=position.topic,
            source_partition=position.partition,
            source_offset=position.offset,
            rejected_at=now,
            election_id=register.election_id,
            rehearsal=mode == "rehearsal",
        )
    )
