"""PA ingest rules: file names, revisions and kinds, PA ids to ours; XML read by defusedxml only."""

from __future__ import annotations

import re

import pytest

from schemas.declaration import Declaration, DeclarationKind
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.file_names import (
    PaFileName,
    check_file_name,
    parse_file_name,
    seat_file_name,
)
from streams.feeds.pa.messages import PaMessageType, PaSeatMessage
from streams.feeds.pa.refusals import Refusal, RefusalReason
from streams.feeds.pa.revisions import SeatTaken, after_taking, declaration_kind
from tests.unit.pa_fixtures import (
    mapping,
    norfolk,
    read_seat,
    register,
    spoiled,
    through_pa,
    xml_of,
)
from tests.unit.test_architecture import PACKAGES, ROOT, all_imports

# File names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Test_General_Election_result_123_2.xml",
            PaFileName("Test_General_Election", PaMessageType.RESULT, 2, 123),
        ),
        ("GE2024_rush_1_1.xml", PaFileName("GE2024", PaMessageType.RUSH, 1, 1)),
        ("GE2024_recount_650_3.xml", PaFileName("GE2024", PaMessageType.RECOUNT, 3, 650)),
        (
            "Test_General_Election_SOP_650.xml",
            PaFileName("Test_General_Election", PaMessageType.STATE_OF_PARTIES, 650),
        ),
    ],
)
def test_a_pa_file_name_says_election_type_seat_and_revision(
    name: str, expected: PaFileName
) -> None:
    assert parse_file_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        ".GE2024_result_1_1.xml.part",  # an upload in progress
        "GE2024_result_1_1.xml.tmp",
        "../GE2024_result_1_1.xml",
        "GE2024/result_1_1.xml",
        "GE2024_Result_1_1.xml",
        "GE2024_declaration_1_1.xml",
        "GE2024_result_1.xml",
        "GE2024_result_one_1.xml",
        "GE2024_result_1_1",
        "_result_1_1.xml",
        "GE2024_result_١_1.xml",
        "GE2024_result_1_1.xml\n",
        "",
    ],
)
def test_any_other_file_name_is_refused(name: str) -> None:
    refusal = parse_file_name(name)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.PA_BAD_FILE_NAME
    assert "\n" not in refusal.detail


def test_a_file_whose_name_and_content_disagree_is_refused() -> None:
    message = read_seat(xml_of(norfolk()))
    right = seat_file_name("GE2024", PaMessageType.RESULT, 531, 1)
    parsed = parse_file_name(right)
    assert isinstance(parsed, PaFileName) and check_file_name(parsed, message) is None
    for wrong, said in [
        ("GE2024_result_530_1.xml", "seat 530 in the name, 531 inside"),
        ("GE2024_result_531_2.xml", "revision 2 in the name, 1 inside"),
        ("GE2024_rush_531_1.xml", "type FirstPastThePostRush in the name"),
        ("GE2024_SOP_1.xml", "type FirstPastThePostStateOfParties in the name"),
    ]:
        parsed = parse_file_name(wrong)
        assert isinstance(parsed, PaFileName)
        refusal = check_file_name(parsed, message)
        assert refusal is not None and refusal.reason is RefusalReason.PA_FILE_NAME_MISMATCH
        assert said in refusal.detail


# Revisions and kinds


def _message(message_type: PaMessageType, revision: int) -> PaSeatMessage:
    message = read_seat(xml_of(norfolk()))
    return PaSeatMessage(
        message_type, revision, message.declaration_time, message.election, message.constituency
    )


RESULT, RUSH, RECOUNT = PaMessageType.RESULT, PaMessageType.RUSH, PaMessageType.RECOUNT


@pytest.mark.parametrize(
    ("taken", "message_type", "kind"),
    [
        (None, RESULT, DeclarationKind.RESULT),
        (None, RUSH, DeclarationKind.RUSH),
        (None, RECOUNT, DeclarationKind.RECOUNT),
        (SeatTaken(1, has_result=False), RESULT, DeclarationKind.RESULT),  # after a rush
        (SeatTaken(1, has_result=True), RESULT, DeclarationKind.CORRECTION),
        (SeatTaken(1, has_result=True), RECOUNT, DeclarationKind.RECOUNT),
    ],
)
def test_a_pa_result_after_a_result_is_a_correction(
    taken: SeatTaken | None, message_type: PaMessageType, kind: DeclarationKind
) -> None:
    assert declaration_kind(taken, _message(message_type, 2)) is kind


def test_a_revision_not_above_the_one_taken_is_refused() -> None:
    taken = SeatTaken(3, has_result=True)
    older = declaration_kind(taken, _message(RESULT, 2))
    assert isinstance(older, Refusal) and older.reason is RefusalReason.PA_STALE_REVISION
    assert "revision 2 is older than revision 3" in older.detail
    again = declaration_kind(taken, _message(RESULT, 3))
    assert isinstance(again, Refusal)
    assert again.reason is RefusalReason.PA_REVISION_ALREADY_INGESTED


def test_a_seat_keeps_its_result_through_a_recount_notice() -> None:
    taken = after_taking(None, _message(RESULT, 1))
    taken = after_taking(taken, _message(RECOUNT, 2))
    assert taken == SeatTaken(2, has_result=True)
    assert declaration_kind(taken, _message(RESULT, 3)) is DeclarationKind.CORRECTION
    assert after_taking(None, _message(RUSH, 1)) == SeatTaken(1, has_result=False)


# PA's ids and figures to our declaration

ABERAFAN_CANDIDATE = b'paId="10001"'  # Captain Beany, who stood in Aberafan Maesteg


def _refused(raw: bytes, reason: RefusalReason, said: str) -> None:
    refusal = through_pa(raw)
    assert isinstance(refusal, Refusal), refusal
    assert refusal.reason is reason, refusal.detail
    assert said in refusal.detail, refusal.detail


@pytest.mark.parametrize(
    ("old", "new", "reason", "said"),
    [
        (b'number="531"', b'number="999"', RefusalReason.PA_UNKNOWN_SEAT, "PA seat 999"),
        (
            b'paId="13698"',
            b'paId="1"',
            RefusalReason.PA_UNKNOWN_CANDIDATE,
            "PA candidate 1 is not",
        ),
        (
            b'paId="13698"',
            ABERAFAN_CANDIDATE,
            RefusalReason.PA_UNKNOWN_CANDIDATE,
            "stands in W07000081, not E14001497",
        ),
        (b'paId="1049"', b'paId="13698"', RefusalReason.PA_UNKNOWN_PARTY, "PA party 13698"),
        (b'date="2024-07-04"', b'date="2019-12-12"', RefusalReason.PA_WRONG_ELECTION, "2019"),
        (
            b'turnout="44335"',
            b'turnout="44342"',
            RefusalReason.PA_FIGURES_DO_NOT_ADD_UP,
            "not the valid votes 44342",
        ),
        (
            b' rejectedBallots="139"',
            b"",
            RefusalReason.PA_FIGURES_DO_NOT_ADD_UP,
            "needs rejected_ballots",
        ),
        (
            b'firstName="Terry" surname="Jermy"',
            b'firstName="" surname=""',
            RefusalReason.PA_INVALID_DECLARATION,
            "name",
        ),
        (
            b'revision="1"',
            b'revision="1000001"',
            RefusalReason.PA_INVALID_DECLARATION,
            "revision",
        ),
    ],
)
def test_a_file_that_does_not_map_to_a_good_declaration_is_refused_for_its_reason(
    old: bytes, new: bytes, reason: RefusalReason, said: str
) -> None:
    _refused(spoiled(xml_of(norfolk()), old, new), reason, said)


def _without_figures(kind: DeclarationKind) -> Declaration:
    """South West Norfolk as a rush (its winner only) or a recount notice (no one elected)."""
    return norfolk().model_copy(
        update={
            "kind": kind,
            "electorate": None,
            "valid_votes": None,
            "rejected_ballots": None,
            "candidates": [
                c.model_copy(
                    update={"votes": None, "elected": c.elected and kind is DeclarationKind.RUSH}
                )
                for c in norfolk().candidates
            ],
        }
    )


def test_a_recount_notice_that_elects_someone_is_refused() -> None:
    raw = xml_of(_without_figures(DeclarationKind.RECOUNT))
    assert b"<Recount " in raw and b"elected=" not in raw
    electing = spoiled(raw, b'surname="Jermy"', b'surname="Jermy" elected="*"')
    _refused(electing, RefusalReason.PA_FIGURES_DO_NOT_ADD_UP, "cannot elect anyone")


def test_pa_spellings_of_seats_and_parties_give_way_to_ours() -> None:
    """PA names seats and abbreviates parties its own way; its ids decide."""
    raw = spoiled(xml_of(norfolk()), b'name="South West Norfolk"', b'name="Norfolk South West"')
    raw = spoiled(raw, b'abbreviation="Con"', b'abbreviation="C"')
    back = through_pa(raw)
    assert isinstance(back, Declaration)
    assert back.constituency_name == "South West Norfolk"
    assert back.candidates[1].party == norfolk().candidates[1].party
    assert back.source == mapping().source


def test_a_rush_comes_back_with_its_winner_and_no_figures() -> None:
    winner_only = _without_figures(DeclarationKind.RUSH)
    raw = xml_of(winner_only)
    assert raw.startswith(b"<?xml") and b"<FirstPastThePostRush " in raw
    assert b"votes=" not in raw and b"majority=" not in raw
    message = read_seat(raw)
    assert message.constituency.winning_party == "Lab"
    assert message.constituency.gain_or_hold == "gain"
    back = declaration_from_pa(message, DeclarationKind.RUSH, mapping(), register())
    assert back == winner_only.model_copy(update={"source": mapping().source})


# Hardening of the code itself

STDLIB_XML_PARSING = re.compile(
    r"\b(ElementTree|etree|ET)\.(fromstring|parse|iterparse|XML|XMLParser|XMLPullParser)\b"
    r"|\bimport\s+(xml\.dom|xml\.sax|lxml)|\bfrom\s+(xml\.dom|xml\.sax|lxml)\b"
    r"|\bfrom\s+xml\.etree\.ElementTree\s+import\s+.*\b(fromstring|parse|iterparse|XML|XMLParser)\b"
)


def test_no_code_parses_xml_except_through_defusedxml() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if STDLIB_XML_PARSING.search(line)
    ]
    assert not found, "XML parsed without defusedxml:\n" + "\n".join(found)
    assert STDLIB_XML_PARSING.search("root = ET.fromstring(raw)")
    assert STDLIB_XML_PARSING.search("from xml.etree.ElementTree import Element, parse")
    assert not STDLIB_XML_PARSING.search("from defusedxml.ElementTree import fromstring")


FEEDS_MUST_NOT_IMPORT = (
    "streams.store",
    "streams.pipeline",
    "streams.web",
    "streams.settings",
    "streams.connections",
    "scripts",
    "faust",
    "redis",
    "aiokafka",
    "kafka",
)


def test_the_feeds_are_pure_rules_with_no_kafka_redis_or_settings() -> None:
    forbidden = [
        f"{found.module}:{found.line}: {found.target}"
        for found in all_imports()
        if found.module.startswith("streams.feeds")
        and any(
            found.target == b or found.target.startswith(b + ".") for b in FEEDS_MUST_NOT_IMPORT
        )
    ]
    assert not forbidden, "streams.feeds imports what it must not:\n" + "\n".join(forbidden)
    assert any(found.module == "streams.feeds.pa.xml_reader" for found in all_imports())
