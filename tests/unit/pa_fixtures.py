"""The rehearsal PA feed for tests: the 2024 night, its mapping, and PA files made from them."""

from __future__ import annotations

from functools import cache

from schemas.declaration import Declaration
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.mapping import FeedMapping, load_feed_mapping
from streams.feeds.pa.messages import PaSeatMessage
from streams.feeds.pa.refusals import Refusal
from streams.feeds.pa.revisions import SeatTaken, declaration_kind
from streams.feeds.pa.xml_reader import read_message
from streams.feeds.pa.xml_writer import declaration_xml
from streams.rules.reference import Register
from tests.unit.tally_fixtures import DATA_DIR, SOUTH_WEST_NORFOLK, declaration_of, night

REHEARSAL = "rehearsal"


@cache
def register() -> Register:
    return night().register


@cache
def mapping() -> FeedMapping:
    return load_feed_mapping(DATA_DIR, REHEARSAL, register())


def norfolk() -> Declaration:
    """South West Norfolk's result: Liz Truss defeated by 630, eight candidates."""
    return declaration_of(SOUTH_WEST_NORFOLK)


def xml_of(declaration: Declaration) -> bytes:
    return declaration_xml(declaration, mapping(), register())


def read_seat(raw: bytes) -> PaSeatMessage:
    """A file the test knows to be a good seat message, read."""
    message = read_message(raw)
    assert isinstance(message, PaSeatMessage), message
    return message


def through_pa(raw: bytes, taken: SeatTaken | None = None) -> Declaration | Refusal:
    """A PA seat file all the way to a declaration, as the ingest will take it."""
    message = read_message(raw)
    if isinstance(message, Refusal):
        return message
    assert isinstance(message, PaSeatMessage), message
    kind = declaration_kind(taken, message)
    if isinstance(kind, Refusal):
        return kind
    return declaration_from_pa(message, kind, mapping(), register())


def spoiled(raw: bytes, old: bytes, new: bytes) -> bytes:
    """`raw` with its one `old` replaced: the test fails if the file has no such text."""
    assert raw.count(old) == 1, (old, raw.count(old))
    return raw.replace(old, new)
