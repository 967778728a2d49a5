"""One PA file taken in by name and bytes: a declaration to publish, PA's totals, or a refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.declaration import Declaration
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.file_names import check_file_name, parse_file_name
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaStateOfParties
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


def take_file(
    name: str,
    raw: bytes,
    taken: Mapping[int, SeatTaken],
    mapping: FeedMapping,
    register: Register,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> FileOutcome:
    """What the file `name` holding `raw` becomes, given what each PA seat has taken so far."""
    file_name = parse_file_name(name)
    if isinstance(file_name, Refusal):
        return file_name
    message = read_message(raw, max_bytes)
    if isinstance(message, Refusal):
        return message
    mismatch = check_file_name(file_name, message)
    if mismatch is not None:
        return mismatch
    if isinstance(message, PaStateOfParties):
        return PartyTotals(file_name.revision, message)
    before = taken.get(message.constituency.number)
    kind = declaration_kind(before, message)
    if isinstance(kind, Refusal):
        return kind
    declaration = declaration_from_pa(message, kind, mapping, register)
    if isinstance(declaration, Refusal):
        return declaration
    return ToPublish(declaration, message.constituency.number, after_taking(before, message))


def intake_order(name: str) -> tuple[int, int, int, str]:
    """Files of one poll are taken by seat, then revision (a seat's rush before its result);
    PA's totals after the seats, and names that are not PA's last."""
    file_name = parse_file_name(name)
    if isinstance(file_name, Refusal):
        return (2, 0, 0, name)
    if file_name.seat_number is None:
        return (1, 0, file_name.revision, name)
    return (0, file_name.seat_number, file_name.revision, name)
