"""PA's ids per feed: the shipped rehearsal mapping is the generator's, complete and one-to-one."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from schemas.common import Party
from scripts.pa_feed_mapping import main as mapping_main
from scripts.pa_feed_mapping import rehearsal_files
from streams.feeds.pa.mapping import (
    CANDIDATES_FILE,
    FEEDS_DIR,
    PARTIES_FILE,
    SEATS_FILE,
    FeedMapping,
    feed_dir,
    feed_mapping,
    load_feed_mapping,
)
from streams.feeds.pa.refusals import Refusal, RefusalReason
from streams.rules.reference import ReferenceDataError
from tests.unit.pa_fixtures import REHEARSAL, mapping, register
from tests.unit.tally_fixtures import DATA_DIR, SOUTH_WEST_NORFOLK

TRUSS = 188  # Democracy Club person id


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _generated() -> dict[str, list[dict[str, str]]]:
    return {name: _rows(text) for name, text in rehearsal_files(register()).items()}


def _build(rows: dict[str, list[dict[str, str]]]) -> FeedMapping:
    return feed_mapping(
        REHEARSAL, rows[SEATS_FILE], rows[PARTIES_FILE], rows[CANDIDATES_FILE], register()
    )


def test_the_shipped_rehearsal_mapping_is_what_the_generator_makes_of_the_register() -> None:
    folder = feed_dir(DATA_DIR, REHEARSAL)
    for name, text in rehearsal_files(register()).items():
        assert (folder / name).read_text("utf-8") == text, "run python -m scripts.pa_feed_mapping"
    assert mapping_main(["--data-dir", str(DATA_DIR), "--check"]) == 0


def test_the_rehearsal_mapping_covers_every_seat_candidate_and_registered_party() -> None:
    feed = mapping()
    assert sorted(feed.ons_ids) == list(range(1, 651))
    assert set(feed.ons_ids.values()) == set(register().constituencies)
    assert len(feed.candidates) == sum(len(s.candidates) for s in register()) == 4515
    assert len(feed.parties) == 103  # Con, Lab, Green, SDP and UKIP have more than one
    assert feed.ons_id(1) == "W07000081"  # Aberafan Maesteg, first by name
    assert feed.source == "pa:rehearsal"


def test_a_party_code_has_one_id_in_a_state_of_the_parties() -> None:
    feed = mapping()
    labour = [pa_id for pa_id, p in feed.parties.items() if p.abbreviation == "Lab"]
    assert len(labour) == 2  # Labour, and Labour and Co-operative
    assert feed.totals_party_ids["Lab"] == min(labour)
    assert len(feed.totals_party_ids) == len({p.abbreviation for p in feed.parties.values()})


def test_ids_unknown_to_the_feed_are_refused_with_their_reason() -> None:
    feed = mapping()
    for refusal, reason in [
        (feed.ons_id(651), RefusalReason.PA_UNKNOWN_SEAT),
        (feed.party(1), RefusalReason.PA_UNKNOWN_PARTY),
        (feed.candidate(531), RefusalReason.PA_UNKNOWN_CANDIDATE),
    ]:
        assert isinstance(refusal, Refusal) and refusal.reason is reason
        assert "rehearsal" in refusal.detail
    truss = feed.candidate(feed.candidate_ids[TRUSS])
    assert not isinstance(truss, Refusal) and truss.ons_id == SOUTH_WEST_NORFOLK


@pytest.mark.parametrize("feed", ["live", "../ge2024", "Rehearsal", "", "a/b"])
def test_a_feed_with_no_mapping_or_an_unsafe_name_is_an_error(feed: str) -> None:
    with pytest.raises(ReferenceDataError) as error:
        load_feed_mapping(DATA_DIR, feed, register())
    assert repr(feed) in str(error.value)
    if feed == "live":
        assert "rehearsal" in str(error.value)  # names the feeds there are


def _without(rows: list[dict[str, str]], column: str, value: str) -> list[dict[str, str]]:
    kept = [row for row in rows if row[column] != value]
    assert len(kept) == len(rows) - 1
    return kept


def _broken(change: str) -> dict[str, list[dict[str, str]]]:
    rows = _generated()
    seats, parties, candidates = rows[SEATS_FILE], rows[PARTIES_FILE], rows[CANDIDATES_FILE]
    if change == "a seat missing":
        rows[SEATS_FILE] = _without(seats, "ons_id", SOUTH_WEST_NORFOLK)
    elif change == "a seat twice":
        rows[SEATS_FILE] = [*seats, {**seats[0], "pa_seat_number": "999"}]
    elif change == "a PA seat number twice":
        seats[1]["pa_seat_number"] = seats[0]["pa_seat_number"]
    elif change == "a seat of another election":
        seats[0]["ons_id"] = "E14009999"
    elif change == "a seat number in words":
        seats[0]["pa_seat_number"] = "one"
    elif change == "a party missing":
        rows[PARTIES_FILE] = _without(parties, "name", "Heritage Party")
    elif change == "a party with no name":
        parties[0]["name"] = ""
    elif change == "a candidate missing":
        rows[CANDIDATES_FILE] = _without(candidates, "dc_person_id", str(TRUSS))
    elif change == "a candidate in another seat":
        candidates[0]["ons_id"] = SOUTH_WEST_NORFOLK
    return rows


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("a seat missing", SOUTH_WEST_NORFOLK),
        ("a seat twice", "has two PA ids"),
        ("a PA seat number twice", "appears twice"),
        ("a seat of another election", "E14009999"),
        ("a seat number in words", "'one'"),
        ("a party missing", "Heritage Party"),
        ("a party with no name", "bad party row"),
        ("a candidate missing", str(TRUSS)),
        ("a candidate in another seat", "not nominated where the row says"),
    ],
)
def test_a_mapping_that_does_not_fit_the_register_is_an_error_saying_where(
    change: str, said: str
) -> None:
    with pytest.raises(ReferenceDataError) as error:
        _build(_broken(change))
    assert said in str(error.value)


def test_the_generator_writes_the_files_the_loader_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "ge2024"
    shutil.copytree(DATA_DIR, data_dir, ignore=shutil.ignore_patterns(FEEDS_DIR))
    assert mapping_main(["--data-dir", str(data_dir), "--check"]) == 1
    assert mapping_main(["--data-dir", str(data_dir)]) == 0
    loaded = load_feed_mapping(data_dir, REHEARSAL, register())
    assert loaded == mapping()
    assert isinstance(loaded.parties[1001], Party)
