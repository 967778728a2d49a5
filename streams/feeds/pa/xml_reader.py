"""PA's XML read safely: bytes in, a PA message or a refusal out, never an exception.

The parser is defusedxml's: a document type declaration (where billion laughs and external
entities live) is refused before anything in it is expanded, and nothing is fetched. A file
over the size cap is refused before it is parsed. Every attribute is read by a strict rule
(ASCII digits for counts, ISO 8601 with an offset for times), so a value Python would bend
into a number ("1_000", " 12", "١٢") is a refusal, not a figure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import fromstring

from streams.feeds.pa.messages import (
    SEAT_MESSAGE_TYPES,
    PaCandidate,
    PaConstituency,
    PaElection,
    PaMessage,
    PaMessageType,
    PaParty,
    PaPartyTotal,
    PaSeatMessage,
    PaStateOfParties,
)
from streams.feeds.pa.refusals import Refusal, RefusalReason, Refused, quoted

# PA's largest file, the state of the parties with a hundred parties, is about 55 KB.
DEFAULT_MAX_FILE_BYTES = 1024 * 1024

# Nine digits is past any count (MAX_COUNT is eight) and keeps int() away from huge strings.
_COUNT = re.compile(r"[0-9]{1,9}", re.ASCII)
_SHARE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,6})?", re.ASCII)
_CHANGE = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]{1,6})?", re.ASCII)
# PA marks a flag with "*" (elected="*"); "true"/"false" are read too. Absent or empty: no.
_FLAGS = {"*": True, "true": True, "": False, "false": False}
_GAIN_OR_HOLD = frozenset({"gain", "hold"})
_LONGEST_TIME = len("2024-07-05T01:23:45.123456+01:00")

T = TypeVar("T")


def read_message(raw: bytes, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> PaMessage | Refusal:
    """The PA message in `raw`, or why it is refused."""
    if len(raw) > max_bytes:
        return Refusal(
            RefusalReason.XML_TOO_LARGE, f"{len(raw)} bytes, more than the {max_bytes} allowed"
        )
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        return Refusal(
            RefusalReason.XML_DTD_FORBIDDEN, f"document type declaration {quoted(exc.name)}"
        )
    except DefusedXmlException as exc:
        # Only reachable if DTDs are ever let through: entities stay forbidden regardless.
        return Refusal(RefusalReason.XML_ENTITIES_FORBIDDEN, f"{type(exc).__name__}: {exc}")
    except ParseError as exc:
        return Refusal(RefusalReason.XML_MALFORMED, f"not well-formed XML: {exc}")
    except (LookupError, ValueError) as exc:
        # expat asks Python for the declared encoding: unknown or multi-byte ones end here.
        return Refusal(RefusalReason.XML_MALFORMED, f"unreadable encoding: {exc}")
    try:
        return _message(root)
    except Refused as exc:
        return exc.refusal


def _message(root: Element) -> PaMessage:
    try:
        message_type = PaMessageType(root.tag)
    except ValueError:
        raise Refused(
            RefusalReason.PA_UNKNOWN_MESSAGE, f"root element {quoted(root.tag)} is no PA message"
        ) from None
    if message_type in SEAT_MESSAGE_TYPES:
        return _seat_message(message_type, root)
    return _state_of_parties(root)


def _seat_message(message_type: PaMessageType, root: Element) -> PaSeatMessage:
    election = _one(root, "Election")
    return PaSeatMessage(
        message_type=message_type,
        revision=_required(root, "revision", _count),
        declaration_time=_required(root, "declarationTime", _time),
        election=_election(election),
        constituency=_constituency(_one(election, "Constituency")),
    )


def _constituency(element: Element) -> PaConstituency:
    return PaConstituency(
        number=_required(element, "number", _count),
        name=_required(element, "name", _text),
        candidates=tuple(_candidate(c) for c in element.findall("Candidate")),
        electorate=_optional(element, "electorate", _count),
        turnout=_optional(element, "turnout", _count),
        rejected_ballots=_optional(element, "rejectedBallots", _count),
        majority=_optional(element, "majority", _count),
        gain_or_hold=_optional(element, "gainOrHold", _gain_or_hold),
        winning_party=_optional(element, "winningParty", _text),
        sitting_party=_optional(element, "sittingParty", _text),
        tie_declared=_flag(element, "tieDeclared"),
    )


def _candidate(element: Element) -> PaCandidate:
    party = _one(element, "Party")
    return PaCandidate(
        pa_id=_required(element, "paId", _count),
        first_name=_optional(element, "firstName", _text) or "",
        surname=_required(element, "surname", _text),
        party=PaParty(
            pa_id=_required(party, "paId", _count),
            name=_required(party, "name", _text),
            abbreviation=_required(party, "abbreviation", _text),
            votes=_optional(party, "votes", _count),
            percentage_share=_optional(party, "percentageShare", _share),
        ),
        elected=_flag(element, "elected"),
        previous_sitting_member=_flag(element, "previousSittingMember"),
    )


def _state_of_parties(root: Element) -> PaStateOfParties:
    parties = _one(root, "Parties")
    return PaStateOfParties(
        number_of_results=_required(root, "numberOfResults", _count),
        total_constituencies=_required(root, "totalNumberOfConstituencies", _count),
        total_votes=_required(root, "totalVotes", _count),
        election=_election(_one(root, "Election")),
        parties=tuple(_party_total(p) for p in parties.findall("Party")),
        revision=_optional(root, "revision", _count),
        declaration_time=_optional(root, "declarationTime", _time),
    )


def _party_total(element: Element) -> PaPartyTotal:
    return PaPartyTotal(
        pa_id=_required(element, "paId", _count),
        name=_required(element, "name", _text),
        abbreviation=_required(element, "abbreviation", _text),
        total_seats=_optional(element, "totalSeats", _count) or 0,
        gains=_optional(element, "gains", _count) or 0,
        losses=_optional(element, "losses", _count) or 0,
        total_votes=_optional(element, "totalVotes", _count) or 0,
        percentage_share=_optional(element, "percentageShare", _share),
        percentage_change=_optional(element, "percentageChange", _change),
    )


def _election(element: Element) -> PaElection:
    return PaElection(
        name=_required(element, "name", _text), date=_required(element, "date", _date)
    )


def _one(parent: Element, tag: str) -> Element:
    found = parent.findall(tag)
    if not found:
        raise Refused(RefusalReason.PA_MISSING_FIELD, f"{parent.tag} has no {tag}")
    if len(found) > 1:
        raise Refused(
            RefusalReason.PA_BAD_STRUCTURE, f"{parent.tag} has {len(found)} {tag} elements, not one"
        )
    return found[0]


# Each reader turns one attribute's text into a value or raises Refused; its name says what
# is expected, for the detail.
Reader = Callable[[str], T]


def _required(element: Element, name: str, read: Reader[T]) -> T:
    text = element.get(name)
    if text is None:
        raise Refused(RefusalReason.PA_MISSING_FIELD, f"{element.tag} has no {name}")
    return _read(element, name, text, read)


def _optional(element: Element, name: str, read: Reader[T]) -> T | None:
    text = element.get(name)
    return None if text is None else _read(element, name, text, read)


def _read(element: Element, name: str, text: str, read: Reader[T]) -> T:
    try:
        return read(text)
    except Refused as exc:
        raise Refused(
            exc.refusal.reason, f"{element.tag} {name}={quoted(text)}: {exc.refusal.detail}"
        ) from None


def _text(text: str) -> str:
    return text


def _count(text: str) -> int:
    if not _COUNT.fullmatch(text):
        raise Refused(RefusalReason.PA_BAD_NUMBER, "not a whole number of at most nine digits")
    return int(text)


def _share(text: str) -> float:
    if not _SHARE.fullmatch(text):
        raise Refused(RefusalReason.PA_BAD_NUMBER, "not a percentage")
    return float(text)


def _change(text: str) -> float:
    if not _CHANGE.fullmatch(text):
        raise Refused(RefusalReason.PA_BAD_NUMBER, "not a signed percentage")
    return float(text)


def _gain_or_hold(text: str) -> str:
    if text not in _GAIN_OR_HOLD:
        raise Refused(RefusalReason.PA_BAD_VALUE, "neither gain nor hold")
    return text


def _flag(element: Element, name: str) -> bool:
    text = element.get(name, "")
    if text not in _FLAGS:
        raise Refused(
            RefusalReason.PA_BAD_VALUE,
            f"{element.tag} {name}={quoted(text)}: a flag is *, true, false or empty",
        )
    return _FLAGS[text]


def _time(text: str) -> dt.datetime:
    if len(text) > _LONGEST_TIME:
        raise Refused(RefusalReason.PA_BAD_VALUE, "too long for a time")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Refused(RefusalReason.PA_BAD_VALUE, "not an ISO 8601 time") from None
    if value.utcoffset() is None:
        raise Refused(RefusalReason.PA_BAD_VALUE, "a time without a UTC offset")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Refused(RefusalReason.PA_BAD_VALUE, "not an ISO 8601 date") from None
