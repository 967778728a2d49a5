"""The night built from the source files equals the official results, in declaration order."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas.declaration import Declaration, DeclarationKind
from scripts.night_builder import RECORDED_SOURCE, Night, build_night
from streams.rules.reference import ReferenceDataError
from streams.rules.validation import Accepted, FeedPosition, validate_message
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
BST = dt.timezone(dt.timedelta(hours=1))

INVERNESS = "Inverness, Skye and West Ross-shire"
CANDIDATES = "HoC-GE2024-results-by-candidate.csv"
CONSTITUENCIES = "HoC-GE2024-results-by-constituency.csv"


def _csv(name: str, data_dir: Path = DATA_DIR) -> list[dict[str, str]]:
    with (data_dir / name).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


def by_name(night: Night, name: str) -> Declaration:
    return next(d for d in night.declarations if d.constituency_name == name)


def test_one_revision_1_result_per_constituency(night: Night) -> None:
    assert len(night.declarations) == 650
    assert len({d.constituency_id for d in night.declarations}) == 650
    assert {d.kind for d in night.declarations} == {DeclarationKind.RESULT}
    assert {d.revision for d in night.declarations} == {1}
    assert {d.source for d in night.declarations} == {"replay:ge2024"}
    assert {d.election_id for d in night.declarations} == {"parl.2024-07-04"}
    for declaration in night.declarations:
        seat = night.register.constituencies[declaration.constituency_id]
        assert declaration.ballot_id == seat.ballot_id
        assert {c.person_id for c in declaration.candidates} == set(seat.candidates)


def test_seats_won_equal_the_official_results_and_the_library_first_party(night: Night) -> None:
    won = Counter(d.winner.party.abbreviation for d in night.declarations if d.winner)
    assert won == Counter(OFFICIAL_SEATS)
    first_party = {row["ONS ID"]: row["First party"] for row in _csv(CONSTITUENCIES)}
    winners = {d.constituency_id: d.winner for d in night.declarations}
    assert {ons_id: w.party.abbreviation for ons_id, w in winners.items() if w} == first_party


def test_votes_by_party_equal_the_candidate_file(night: Night) -> None:
    expected: Counter[str] = Counter()
    for row in _csv(CANDIDATES):
        expected[row["Party abbreviation"]] += int(row["Votes"])
    built: Counter[str] = Counter()
    for declaration in night.declarations:
        for candidate in declaration.candidates:
            built[candidate.party.abbreviation] += candidate.votes or 0
    assert built == expected
    assert sum(d.valid_votes or 0 for d in night.declarations) == OFFICIAL_VALID_VOTES


def test_figures_and_people_come_from_the_library_files(night: Night) -> None:
    seats = {row["ONS ID"]: row for row in _csv(CONSTITUENCIES)}
    people = {int(row["DC Person ID"]): row for row in _csv(CANDIDATES)}
    for declaration in night.declarations:
        row = seats[declaration.constituency_id]
        assert declaration.electorate == int(row["Electorate"])
        assert declaration.valid_votes == int(row["Valid votes"])
        assert declaration.rejected_ballots == int(row["Invalid votes"])
        for candidate in declaration.candidates:
            person = people[candidate.person_id]
            assert candidate.votes == int(person["Votes"])
            assert candidate.party.abbreviation == person["Party abbreviation"]
            assert candidate.party.name == person["Party name"]
            assert candidate.party.ec_id == (person["Electoral Commission party ID"] or None)


def test_in_time_order_from_houghton_to_inverness(night: Night) -> None:
    order = [(d.declared_at, d.constituency_name) for d in night.declarations]
    assert order == sorted(order)
    first, last = night.declarations[0], night.declarations[-1]
    assert (first.constituency_name, first.declared_at) == (
        "Houghton and Sunderland South",
        dt.datetime(2024, 7, 4, 23, 17, tzinfo=BST),
    )
    # The times file has no row for Inverness; the Library recorded it at 18:00 on Saturday.
    assert (last.constituency_name, last.declared_at) == (
        INVERNESS,
        dt.datetime(2024, 7, 6, 18, 0, tzinfo=BST),
    )
    norfolk = by_name(night, "South West Norfolk")
    assert norfolk.declared_at == dt.datetime(2024, 7, 5, 7, 0, tzinfo=BST)


def test_only_inverness_takes_the_library_time(night: Night) -> None:
    fallback = [
        night.register.constituencies[ons_id].name
        for ons_id, source in night.time_source.items()
        if source == RECORDED_SOURCE
    ]
    assert fallback == [INVERNESS]
    assert len(night.time_source) == 650


@pytest.mark.parametrize(
    ("name", "clock"),
    [
        ("Brecon, Radnor and Cwm Tawe", dt.datetime(2024, 7, 5, 5, 26, tzinfo=BST)),  # quoted
        ("Kingston upon Hull East", None),  # 'Hull East' in the times file
        ("Montgomeryshire and Glyndŵr", None),  # without the circumflex there
        ("Dover and Deal", dt.datetime(2024, 7, 5, 17, 20, tzinfo=BST)),  # '&', afternoon
    ],
)
def test_the_times_file_traps(night: Night, name: str, clock: dt.datetime | None) -> None:
    declaration = by_name(night, name)
    assert night.time_source[declaration.constituency_id] == "declaration-times"
    if clock is not None:
        assert declaration.declared_at == clock


def test_the_exit_poll_comes_first_at_ten(night: Night) -> None:
    messages = night.messages()
    assert len(messages) == 651
    key, message = messages[0]
    assert (key, message) == ("exit-poll", night.exit_poll)
    assert night.exit_poll.published_at == dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    assert {p.party: p.seats for p in night.exit_poll.projections}["Lab"] == 410
    assert sum(p.seats for p in night.exit_poll.projections) == 650
    assert [k for k, _ in messages[1:]] == [d.constituency_id for d in night.declarations]


def test_every_message_passes_validation(night: Night) -> None:
    for offset, (key, message) in enumerate(night.messages()):
        verdict = validate_message(
            message.model_dump_json().encode(),
            FeedPosition("declarations", 0, offset, key.encode()),
            night.register,
        )
        assert isinstance(verdict, Accepted), verdict


def test_the_same_files_build_the_same_night() -> None:
    first, again = build_night(DATA_DIR), build_night(DATA_DIR)
    assert [m.model_dump_json() for _, m in first.messages()] == [
        m.model_dump_json() for _, m in again.messages()
    ]


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ge2024"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit_lines(path: Path, keep: Callable[[str], bool]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if keep(line)), encoding="utf-8")


def test_a_times_row_matching_no_seat_is_an_error_naming_it(data_copy: Path) -> None:
    times = data_copy / "declaration-times.csv"
    times.write_text(times.read_text(encoding="utf-8").replace("Hitchin,", "Hitchen,"), "utf-8")
    with pytest.raises(ReferenceDataError, match="Hitchen"):
        build_night(data_copy)


def test_a_seat_missing_from_the_times_file_is_an_error_naming_it(data_copy: Path) -> None:
    # The Library's file still has Hitchin, but only Inverness may fall back to it.
    _edit_lines(data_copy / "declaration-times.csv", lambda line: "Hitchin" not in line)
    with pytest.raises(ReferenceDataError, match=r"no row for: Hitchin \(E14001289\)"):
        build_night(data_copy)


def test_inverness_with_no_time_anywhere_is_an_error_naming_it(data_copy: Path) -> None:
    _edit_lines(
        data_copy / "HoC-GE2024-winning-members-time-recorded.csv",
        lambda line: "Inverness" not in line,
    )
    with pytest.raises(ReferenceDataError, match="Inverness, Skye and West Ross-shire"):
        build_night(data_copy)


def test_a_bad_clock_time_is_an_error_naming_the_seat(data_copy: Path) -> None:
    times = data_copy / "declaration-times.csv"
    times.write_text(times.read_text(encoding="utf-8").replace("17:22,", "7pm,"), "utf-8")
    with pytest.raises(ReferenceDataError, match="bad time '7pm' for Hitchin"):
        build_night(data_copy)


def test_a_missing_file_is_an_error_naming_it(data_copy: Path) -> None:
    (data_copy / "exit-poll.csv").unlink()
    with pytest.raises(ReferenceDataError, match=r"exit-poll\.csv"):
        build_night(data_copy)


def test_figures_that_do_not_add_up_are_an_error_naming_the_seat(data_copy: Path) -> None:
    path = data_copy / CONSTITUENCIES
    rows = _csv(CONSTITUENCIES, data_copy)
    hitchin = next(row for row in rows if row["Constituency name"] == "Hitchin")
    hitchin["Valid votes"] = str(int(hitchin["Valid votes"]) + 1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ReferenceDataError, match="Hitchin"):
        build_night(data_copy)
