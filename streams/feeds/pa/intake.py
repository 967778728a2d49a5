"""One PA file taken in by name and bytes: a declaration to publish, PA's totals, or a refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.declaration import Declaration
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.file_names import check_file_name, parse_file_name
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaSeatMessage, PaStateOfParties
from streams.feeds.pa.refusals import Refusal
from streams.feeds.pa.revisions import SeatTaken, after_taking, declaration_kind
from streams.feeds.pa.xml_reader import DEFAULT_MAX_FILE_BYTES, read_message
from streams.rules.reference import Register


@dataclass(frozen=True)
class ToPublish:
    """A declaration for the declarations topic, and what its seat has taken once it is sent."""

    declaration: Declaration
    seat_number: int
    taken: SeatTaken


@dataclass(frozen=True)
class PartyTotals:
    """PA's state of the parties: not a declaration (our own tallies make ours), but a check
    on them; `revision` is its file name's number."""

    revision: int
    totals: PaStateOfParties


FileOutcome = ToPublish | PartyTotals | Refusal


@dataclass(frozen=True)
class ReadFile:
    """A file read and parsed, not yet taken: its name, and its message or why it is refused."""

    name: str
    message: PaSeatMessage | PaStateOfParties | Refusal
    revision: int = 0  # the file name's


def read_file(name: str, raw: bytes, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ReadFile:
    """Parse the file `name` holding `raw`, and check its name against what it holds."""
    file_name = parse_file_name(name)
    if isinstance(file_name, Refusal):
        return ReadFile(name, file_name)
    message = read_message(raw, max_bytes)
    if isinstance(message, Refusal):
        return ReadFile(name, message)
    mismatch = check_file_name(file_name, message)
    return ReadFile(name, mismatch or message, file_name.revision)


def take_read(
    read: ReadFile, taken: Mapping[int, SeatTaken], mapping: FeedMapping, register: Register
) -> FileOutcome:
    """What a file read becomes, given what each PA seat has taken so far."""
    message = read.message
    if isinstance(message, Refusal):
        return message
    if isinstance(message, PaStateOfParties):
        return PartyTotals(read.revision, message)
    before = taken.get(message.constituency.number)
    kind = declaration_kind(before, message)
    if isinstance(kind, Refusal):
        return kind
    declaration = declaration_from_pa(message, kind, mapping, register)
    if isinstance(declaration, Refusal):
        return declaration
    return ToPublish(declaration, message.constituency.number, after_taking(before, message))


def event_order(read: ReadFile) -> tuple[int, float, int, int, str]:
    """Files read in one poll are taken in the night's own order: by declaration time, then
    seat and revision (a seat's rush before its result); PA's totals after the seats, and
    refusals last. The worker's watermark reads each partition's messages as coming in
    declaration-time order: published by seat number instead, a poll holding a night's worth
    of files would let a national moment be told before a seat declared earlier arrived."""
    message = read.message
    if isinstance(message, Refusal):
        return (2, 0.0, 0, 0, read.name)
    if isinstance(message, PaStateOfParties):
        return (1, 0.0, 0, read.revision, read.name)
    at = message.declaration_time.timestamp()
    return (0, at, message.constituency.number, message.revision, read.name)


def intake_order(name: str) -> tuple[int, int, int, str]:
    """Files of one poll are taken by seat, then revision (a seat's rush before its result);
    PA's totals after the seats, and names that are not PA's last."""
    file_name = parse_file_name(name)
    if isinstance(file_name, Refusal):
        return (2, 0, 0, name)
    if file_name.seat_number is None:
        return (1, 0, file_name.revision, name)
    return (0, file_name.seat_number, file_name.revision, name)
