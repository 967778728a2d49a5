"""The night built from the source files equals the official results, in time order."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import pytest

from scripts.night_builder import Night, build_night
from streams.reference import ReferenceDataError
from streams.validation import Accepted, FeedPosition, validate_message
from tests.unit.ge2024 import (
    DATA_DIR,
    OFFICIAL_SEATS,
    OFFICIAL_VALID_VOTES,
    constituency_rows,
    votes_by_party,
)

BST = dt.timezone(dt.timedelta(hours=1))


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


def test_one_result_per_constituency(night: Night) -> None:
    assert len(night.declarations) == 650
    assert len({d.constituency_id for d in night.declarations}) == 650
    assert {d.kind.value for d in night.declarations} == {"result"}


def test_seats_won_equal_the_official_results(night: Night) -> None:
    won = Counter(d.winner.party.abbreviation for d in night.declarations if d.winner)
    assert won == Counter(OFFICIAL_SEATS)
    library = Counter(row["First party"] for row in constituency_rows().values())
    assert won == library


def test_votes_equal_the_candidate_file(night: Night) -> None:
    votes: Counter[str] = Counter()
    for declaration in night.declarations:
        for candidate in declaration.candidates:
            votes[candidate.party.abbreviation] += candidate.votes or 0
    assert votes == votes_by_party()
    assert sum(d.valid_votes or 0 for d in night.declarations) == OFFICIAL_VALID_VOTES


def test_in_time_order_from_houghton_to_inverness(night: Night) -> None:
    times = [d.declared_at for d in night.declarations]
    assert times == sorted(times)
    first, last = night.declarations[0], night.declarations[-1]
    assert first.constituency_name == "Houghton and Sunderland South"
    assert first.declared_at == dt.datetime(2024, 7, 4, 23, 17, tzinfo=BST)
    assert last.constituency_name == "Inverness, Skye and West Ross-shire"
    assert last.declared_at.date() == dt.date(2024, 7, 6)
    norfolk = next(d for d in night.declarations if d.constituency_name == "South West Norfolk")
    assert norfolk.declared_at == dt.datetime(2024, 7, 5, 7, 0, tzinfo=BST)


def test_the_exit_poll_comes_first_at_ten(night: Night) -> None:
    key, message = night.messages()[0]
    assert key == "exit-poll"
    assert message == night.exit_poll
    assert night.exit_poll.published_at == dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    assert sum(p.seats for p in night.exit_poll.projections) == 650


def test_every_declaration_passes_validation(night: Night) -> None:
    for offset, (key, message) in enumerate(night.messages()):
        verdict = validate_message(
            message.model_dump_json().encode(),
            FeedPosition("declarations", 0, offset, key.encode()),
            night.register,
        )
        assert isinstance(verdict, Accepted), verdict


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "ge2024"
    shutil.copytree(DATA_DIR, target)
    return target


def test_an_unmatched_seat_name_is_an_error_naming_it(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    times = data / "declaration-times.csv"
    times.write_text(times.read_text().replace("Hitchin,", "Hitchen,"), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="Hitchen"):
        build_night(data)


def test_a_seat_with_no_time_anywhere_is_an_error_naming_it(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    for name in ("declaration-times.csv", "HoC-GE2024-winning-members-time-recorded.csv"):
        path = data / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "Hitchin" not in line))
    with pytest.raises(ReferenceDataError, match="Hitchin"):
        build_night(data)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "exit-poll.csv").unlink()
    with pytest.raises(ReferenceDataError, match=r"exit-poll\.csv"):
        build_night(data)
