"""PA's XML: the 2024 night written as PA files and read back unchanged; hostile files refused."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.declaration import Declaration, DeclarationKind
from scripts.chaos import DUPLICATE, EXIT_POLL, ChaosRates, inject_chaos
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.file_names import (
    check_file_name,
    parse_file_name,
    seat_file_name,
    state_file_name,
)
from streams.feeds.pa.messages import (
    PaMessageType,
    PaPartyTotal,
    PaSeatMessage,
    PaStateOfParties,
)
from streams.feeds.pa.refusals import MAX_DETAIL_CHARS, Refusal, RefusalReason
from streams.feeds.pa.revisions import SeatTaken, after_taking, declaration_kind
from streams.feeds.pa.xml_reader import read_message
from streams.feeds.pa.xml_writer import ROOTS, state_of_parties_xml
from streams.rules.tally import Contribution, seat_contribution, state_of_parties
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES
from tests.unit.pa_fixtures import (
    mapping,
    norfolk,
    read_seat,
    register,
    spoiled,
    through_pa,
    xml_of,
)
from tests.unit.tally_fixtures import night

ELECTION = "Rehearsal_General_Election"


def _as_pa_delivers(declaration: Declaration) -> Declaration:
    return declaration.model_copy(update={"source": mapping().source})


def _add(totals: Contribution, declaration: Declaration) -> None:
    seat = register().constituencies[declaration.constituency_id]
    for key, value in seat_contribution(declaration, seat).items():
        totals[key] = totals.get(key, 0) + value


# The whole night, both ways


def test_every_result_of_the_night_comes_back_from_pa_xml_as_it_was_sent() -> None:
    totals: Contribution = {}
    for sent in night().declarations:
        raw = xml_of(sent)
        message = read_seat(raw)
        name = seat_file_name(
            ELECTION, message.message_type, message.constituency.number, message.revision
        )
        parsed_name = parse_file_name(name)
        assert not isinstance(parsed_name, Refusal)
        assert check_file_name(parsed_name, message) is None
        back = through_pa(raw)
        assert back == _as_pa_delivers(sent), sent.constituency_name
        assert isinstance(back, Declaration)
        _add(totals, back)
    # The night through the PA path ends at the official state, as through the JSON path.
    final = state_of_parties(totals, register(), len(night().declarations), None, None)
    assert {p.party: p.seats for p in final.parties if p.seats} == OFFICIAL_SEATS
    assert final.total_votes == OFFICIAL_VALID_VOTES


def test_rushes_recounts_and_corrections_come_back_as_the_kinds_sent() -> None:
    """The replay's messy night (rushes, recount notices, wrong counts then corrections,
    duplicates): each seat's declarations in revision order come back as sent; a duplicate
    is refused as already taken."""
    rates = ChaosRates(
        duplicate=0.2,
        reorder=0.0,
        correction=0.2,
        rush=0.3,
        recount_closest=10,
        malformed=0.0,
        invalid=0.0,
    )
    by_seat: dict[str, list[tuple[Declaration, bool]]] = defaultdict(list)
    for item in inject_chaos(night(), 11, rates):
        if item.label != EXIT_POLL:
            sent = Declaration.model_validate_json(item.value)
            by_seat[sent.constituency_id].append((sent, item.label == DUPLICATE))
    kinds: Counter[str] = Counter()
    for sent_for_seat in by_seat.values():
        taken: SeatTaken | None = None
        for sent, duplicate in sorted(sent_for_seat, key=lambda pair: pair[0].revision):
            message = read_seat(xml_of(sent))
            kind = declaration_kind(taken, message)
            if duplicate:
                assert isinstance(kind, Refusal)
                assert kind.reason is RefusalReason.PA_REVISION_ALREADY_INGESTED
                continue
            assert kind == sent.kind, (sent.constituency_name, sent.revision)
            assert not isinstance(kind, Refusal)
            back = declaration_from_pa(message, kind, mapping(), register())
            assert back == _as_pa_delivers(sent)
            taken = after_taking(taken, message)
            kinds[kind] += 1
    assert set(kinds) == set(DeclarationKind), kinds
    assert set(ROOTS) == set(DeclarationKind)


def test_a_state_of_the_parties_comes_back_with_every_party_total() -> None:
    totals: Contribution = {}
    read_back: list[PaStateOfParties] = []
    for sequence, declaration in enumerate(night().declarations, start=1):
        _add(totals, declaration)
        if sequence % 130 and sequence != len(night().declarations):
            continue
        state = state_of_parties(
            totals, register(), sequence, declaration.declared_at, declaration.constituency_id
        )
        raw = state_of_parties_xml(state, mapping(), register())
        pa = read_message(raw)
        assert isinstance(pa, PaStateOfParties), pa
        name = parse_file_name(state_file_name(ELECTION, sequence))
        assert not isinstance(name, Refusal) and check_file_name(name, pa) is None
        assert (pa.revision, pa.declaration_time) == (sequence, declaration.declared_at)
        assert (pa.number_of_results, pa.total_constituencies) == (sequence, 650)
        assert pa.total_votes == state.total_votes
        assert [_as_ours(p) for p in pa.parties] == [
            (p.party, p.seats, p.gains, p.losses, p.votes) for p in state.parties
        ]
        for party, tally in zip(pa.parties, state.parties, strict=True):
            assert party.percentage_share == pytest.approx(tally.share * 100, abs=0.005)
            if tally.share_change is not None:
                assert party.percentage_change == pytest.approx(tally.share_change * 100, abs=0.005)
        read_back.append(pa)
    assert len(read_back) == 5  # every 130th seat, the last one included
    final = [_as_ours(p) for p in read_back[-1].parties]
    assert {party: seats for party, seats, *_ in final if seats} == OFFICIAL_SEATS


def _as_ours(party: PaPartyTotal) -> tuple[str, int, int, int, int]:
    known = mapping().party(party.pa_id)
    assert not isinstance(known, Refusal)
    return known.abbreviation, party.total_seats, party.gains, party.losses, party.total_votes


def test_a_state_of_the_parties_as_pa_writes_it_leaves_zeros_and_revision_out() -> None:
    raw = b"""<?xml version="1.0" encoding="UTF-8"?>
<FirstPastThePostStateOfParties numberOfResults="650" totalNumberOfConstituencies="650"
    totalVotes="29080946" forecastWinningParty="No overall majority">
  <Election name="Test General Election" date="2015-05-06" type="G" />
  <Parties>
    <Party paId="5650" name="UK Independence Party" abbreviation="UKIP" totalSeats="5"
        gains="3" totalVotes="1253503" percentageShare="4.31" percentageChange="+1.21" />
    <Party paId="5647" name="Trade Unionist and Socialist Coalition" abbreviation="TUSC"
        totalVotes="94718" percentageShare="0.33" percentageChange="-0.28" />
  </Parties>
</FirstPastThePostStateOfParties>"""
    pa = read_message(raw)
    assert isinstance(pa, PaStateOfParties)
    assert pa.revision is None and pa.declaration_time is None
    assert pa.parties[0].losses == 0 and pa.parties[1].total_seats == 0
    assert pa.parties[1].percentage_change == -0.28
    name = parse_file_name("Test_General_Election_SOP_650.xml")
    assert not isinstance(name, Refusal) and check_file_name(name, pa) is None


# Hostile and broken files: each refused for its reason, none raising

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<FirstPastThePostResult revision="1" declarationTime="&lol9;"/>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE FirstPastThePostResult [<!ENTITY passwd SYSTEM "file:///etc/passwd">]>
<FirstPastThePostResult revision="1" declarationTime="2024-07-05T01:00:00+01:00">
  <Election name="&passwd;" date="2024-07-04"/></FirstPastThePostResult>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE FirstPastThePostResult SYSTEM "http://127.0.0.1:9/pa.dtd">
<FirstPastThePostResult revision="1"/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]><x/>"""


def _good() -> bytes:
    return xml_of(norfolk())


def _same(raw: bytes) -> Callable[[bytes], bytes]:
    return lambda good: raw


def _replace(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    return lambda good: spoiled(good, old, new)


COMMUNIST_PARTY = (
    b'<Party paId="1023" name="Communist Party of Britain" abbreviation="Comm" votes="77" '
    b'percentageShare="0.17" />'
)
ELECTION_TAG = b'<Election name="UK general election, 4 July 2024" date="2024-07-04">'

# Each made from a good file (South West Norfolk's result) when its test runs.
HOSTILE: dict[str, tuple[Callable[[bytes], bytes], RefusalReason]] = {
    "billion laughs": (_same(BILLION_LAUGHS), RefusalReason.XML_DTD_FORBIDDEN),
    "external entity": (_same(EXTERNAL_ENTITY), RefusalReason.XML_DTD_FORBIDDEN),
    "external DTD": (_same(EXTERNAL_DTD), RefusalReason.XML_DTD_FORBIDDEN),
    "parameter entity": (_same(PARAMETER_ENTITY), RefusalReason.XML_DTD_FORBIDDEN),
    "undeclared entity": (
        _replace(b'name="South West Norfolk"', b'name="&passwd;"'),
        RefusalReason.XML_MALFORMED,
    ),
    "truncated": (lambda good: good[: len(good) // 2], RefusalReason.XML_MALFORMED),
    "half uploaded": (lambda good: good[:1024], RefusalReason.XML_MALFORMED),
    "empty": (_same(b""), RefusalReason.XML_MALFORMED),
    "not XML": (_same(b"PA results service temporarily unavailable"), RefusalReason.XML_MALFORMED),
    "unknown encoding": (
        _same(b'<?xml version="1.0" encoding="x-pa-ebcdic"?><Recount/>'),
        RefusalReason.XML_MALFORMED,
    ),
    "trailing garbage": (lambda good: good + b"<Recount/>", RefusalReason.XML_MALFORMED),
    "HTML error page": (
        _same(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        RefusalReason.PA_UNKNOWN_MESSAGE,
    ),
    "wrong root": (
        lambda good: good.replace(b"FirstPastThePostResult", b"FirstPastThePostResults"),
        RefusalReason.PA_UNKNOWN_MESSAGE,
    ),
    "missing revision": (_replace(b' revision="1"', b""), RefusalReason.PA_MISSING_FIELD),
    "missing seat number": (_replace(b' number="531"', b""), RefusalReason.PA_MISSING_FIELD),
    "missing party": (_replace(COMMUNIST_PARTY, b""), RefusalReason.PA_MISSING_FIELD),
    "missing election": (
        lambda good: spoiled(spoiled(good, ELECTION_TAG, b""), b"</Election>", b""),
        RefusalReason.PA_MISSING_FIELD,
    ),
    "two constituencies": (
        _replace(b"</Election>", b'<Constituency number="1" name="x"/></Election>'),
        RefusalReason.PA_BAD_STRUCTURE,
    ),
    "votes with a letter": (
        _replace(b'votes="11847"', b'votes="11847a"'),
        RefusalReason.PA_BAD_NUMBER,
    ),
    "votes with an underscore": (
        _replace(b'votes="11847"', b'votes="11_847"'),
        RefusalReason.PA_BAD_NUMBER,
    ),
    "votes in Arabic-Indic digits": (
        _replace(b'votes="11847"', 'votes="١١٨٤٧"'.encode()),
        RefusalReason.PA_BAD_NUMBER,
    ),
    "negative votes": (_replace(b'votes="11847"', b'votes="-11847"'), RefusalReason.PA_BAD_NUMBER),
    "a googol of votes": (
        _replace(b'votes="11847"', b'votes="1' + b"0" * 100 + b'"'),
        RefusalReason.PA_BAD_NUMBER,
    ),
    "share not a number": (
        _replace(b'percentageShare="26.72"', b'percentageShare="NaN"'),
        RefusalReason.PA_BAD_NUMBER,
    ),
    "time without offset": (
        _replace(b"07:00:00+01:00", b"07:00:00"),
        RefusalReason.PA_BAD_VALUE,
    ),
    "time in words": (
        _replace(b'"2024-07-05T07:00:00+01:00"', b'"seven in the morning"'),
        RefusalReason.PA_BAD_VALUE,
    ),
    "election date in words": (
        _replace(b'date="2024-07-04"', b'date="polling day"'),
        RefusalReason.PA_BAD_VALUE,
    ),
    "elected yes": (_replace(b'elected="*"', b'elected="yes"'), RefusalReason.PA_BAD_VALUE),
    "gain or hold neither": (
        _replace(b'gainOrHold="gain"', b'gainOrHold="win"'),
        RefusalReason.PA_BAD_VALUE,
    ),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_or_broken_file_is_refused_for_its_reason(what: str) -> None:
    make, reason = HOSTILE[what]
    refusal = read_message(make(_good()))
    assert isinstance(refusal, Refusal), refusal
    assert refusal.reason is reason, refusal.detail
    assert refusal.detail and len(refusal.detail) <= MAX_DETAIL_CHARS
    assert "root:" not in refusal.detail  # nothing of /etc/passwd was read


def test_an_oversized_file_is_refused_before_it_is_parsed() -> None:
    good = _good()
    assert not isinstance(read_message(good, max_bytes=len(good)), Refusal)
    refusal = read_message(good + b" ", max_bytes=len(good))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.XML_TOO_LARGE
    # The default cap: a megabyte of padding inside an otherwise good file.
    padded = spoiled(good, b"<Election ", b"<Election " + b" " * (1024 * 1024))
    refusal = read_message(padded)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.XML_TOO_LARGE


def test_a_file_in_utf16_is_read_like_any_other() -> None:
    text = _good().decode().replace("encoding='utf-8'", "encoding='utf-16'")
    assert through_pa(text.encode("utf-16")) == _as_pa_delivers(norfolk())


def test_pa_flags_and_extra_attributes_are_read() -> None:
    raw = spoiled(_good(), b'surname="Truss"', b'surname="Truss" previousSittingMember="*"')
    raw = spoiled(raw, b'majority="630"', b'majority="630" percentageMajority="1.42" swing="9.1"')
    message = read_seat(raw)
    truss = next(c for c in message.constituency.candidates if c.surname == "Truss")
    assert truss.previous_sitting_member and not truss.elected
    assert message.constituency.majority == 630
    assert message.message_type is PaMessageType.RESULT


def test_a_refusal_quotes_what_the_file_said_briefly_and_without_control_characters() -> None:
    raw = spoiled(_good(), b'votes="11847"', b'votes="' + b"9\t" * 500 + b'"')
    refusal = read_message(raw)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.PA_BAD_NUMBER
    assert "\t" not in refusal.detail and len(refusal.detail) < 300


# Property tests: whatever arrives, a message or a refusal, never an exception

ATTRIBUTE = re.compile(rb'(\w+)="[^"]*"')


def _never_raises(raw: bytes) -> None:
    message = read_message(raw)
    if isinstance(message, PaSeatMessage):
        kind = declaration_kind(None, message)
        if not isinstance(kind, Refusal):
            result = declaration_from_pa(message, kind, mapping(), register())
            assert isinstance(result, Declaration | Refusal)
    else:
        assert isinstance(message, PaStateOfParties | Refusal)


@st.composite
def _damaged(draw: st.DrawFn, most_changes: int) -> bytes:
    """A good file with bytes flipped, cut, inserted, or an attribute given any text."""
    good = _good()
    raw = bytearray(good)
    for _ in range(draw(st.integers(1, most_changes))):
        change = draw(st.sampled_from(["flip", "cut", "insert", "attribute"]))
        if change == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] = draw(st.integers(0, 255))
        elif change == "cut":
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif change == "insert":
            at = draw(st.integers(0, len(raw)))
            raw[at:at] = draw(st.binary(max_size=20))
        elif change == "attribute":
            attributes = list(ATTRIBUTE.finditer(bytes(raw)))
            if attributes:
                attribute = draw(st.sampled_from(attributes))
                value = quoteattr(draw(st.text(max_size=30))).encode()
                raw[attribute.start() : attribute.end()] = attribute[1] + b"=" + value
    return bytes(raw)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_never_raised(raw: bytes) -> None:
    _never_raises(raw)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_damaged(3))
def test_a_damaged_good_file_is_read_or_refused_never_raised(raw: bytes) -> None:
    _never_raises(raw)


# ~20 s: scripts/test.sh runs it, make test-unit does not.
@pytest.mark.slow
@settings(
    max_examples=3000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(st.one_of(_damaged(8), st.binary(max_size=4000)))
def test_three_thousand_damaged_files_are_read_or_refused_never_raised(raw: bytes) -> None:
    _never_raises(raw)
