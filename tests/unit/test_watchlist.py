"""The watchlist loads by person id, refuses bad rows by line, and agrees with the register."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from streams.rules.reference import Register, load_register
from streams.rules.watchlist import (
    WatchCategory,
    Watchlist,
    WatchlistError,
    check_against_register,
    load_watchlist,
    parse_watchlist,
)
from streams.settings import Settings

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
HEADER = "dc_person_id,first_name,surname,ons_id,constituency,party,category,role\n"


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


@pytest.fixture(scope="module")
def watchlist() -> Watchlist:
    return load_watchlist(DATA_DIR / "watchlist.csv")


def parsed(text: str) -> Watchlist:
    return parse_watchlist(csv.DictReader(io.StringIO(HEADER + text)), "watchlist.csv")


def test_the_2024_watchlist_is_keyed_by_person_id(watchlist: Watchlist) -> None:
    with (DATA_DIR / "watchlist.csv").open(encoding="utf-8") as handle:
        rows = sum(1 for _ in handle) - 1
    assert len(watchlist) == rows
    truss = watchlist.get(188)
    assert truss is not None
    assert truss.name == "Liz Truss"
    assert truss.category is WatchCategory.FORMER_PRIME_MINISTER
    assert truss.constituency_id == "E14001497"
    assert truss.party == "Con"
    assert 188 in watchlist and 999_999_999 not in watchlist


def test_cabinet_members_and_ministers_attending_cabinet_are_told_apart(
    watchlist: Watchlist,
) -> None:
    cabinet = {p.name for p in watchlist.in_category(WatchCategory.CABINET)}
    attending = {p.name for p in watchlist.in_category(WatchCategory.ATTENDS_CABINET)}
    assert {"Grant Shapps", "Penny Mordaunt", "Alex Chalk", "Gillian Keegan"} <= cabinet
    assert "Johnny Mercer" in attending
    assert not cabinet & attending


def test_every_person_stands_in_the_seat_the_watchlist_names(
    watchlist: Watchlist, register: Register
) -> None:
    assert check_against_register(watchlist, register) == []


def test_a_person_in_the_wrong_seat_is_reported(register: Register) -> None:
    # Liz Truss put in North West Norfolk: a silent miss on the night unless checked.
    moved = parsed("188,Liz,Truss,E14001405,North West Norfolk,Con,former_prime_minister,PM\n")
    problems = check_against_register(moved, register)
    assert len(problems) == 1
    assert "Liz Truss (188)" in problems[0] and "North West Norfolk" in problems[0]


def test_a_wrong_party_or_unknown_seat_is_reported(register: Register) -> None:
    wrong = parsed(
        "188,Liz,Truss,E14001497,South West Norfolk,Lab,former_prime_minister,PM\n"
        "5371,Rishi,Sunak,E14009999,Nowhere,Con,prime_minister,PM\n"
    )
    problems = check_against_register(wrong, register)
    assert any("stands for Con" in p for p in problems)
    assert any("E14009999 is not a constituency" in p for p in problems)


def test_an_unknown_category_names_the_row() -> None:
    with pytest.raises(WatchlistError) as error:
        parsed(
            "188,Liz,Truss,E14001497,South West Norfolk,Con,former_prime_minister,PM\n"
            "3155,Jeremy,Hunt,E14001249,Godalming and Ash,Con,cabnet,Chancellor\n"
        )
    message = str(error.value)
    assert "watchlist.csv line 3" in message
    assert "Jeremy Hunt" in message
    assert "'cabnet'" in message and "attends_cabinet" in message


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("x188,Liz,Truss,E14001497,SWN,Con,cabinet,r\n", "not a number"),
        ("188,Liz,Truss,14001497,SWN,Con,cabinet,r\n", "not an ONS constituency id"),
        ("188,Liz,Truss,E14001497,SWN,,cabinet,r\n", "missing party"),
        ("0,Liz,Truss,E14001497,SWN,Con,cabinet,r\n", "must be positive"),
    ],
)
def test_a_bad_row_is_refused_with_a_reason(row: str, complaint: str) -> None:
    with pytest.raises(WatchlistError, match=complaint):
        parsed(row)


def test_a_person_listed_twice_is_refused() -> None:
    with pytest.raises(WatchlistError, match="listed twice"):
        parsed(
            "188,Liz,Truss,E14001497,SWN,Con,former_prime_minister,PM\n"
            "188,Liz,Truss,E14001497,SWN,Con,cabinet,Foreign Secretary\n"
        )


def test_a_missing_role_falls_back_to_the_category() -> None:
    people = parsed("4223,Johnny,Mercer,E14001426,Plymouth Moor View,Con,attends_cabinet,\n")
    mercer = people.get(4223)
    assert mercer is not None and mercer.role == "attends cabinet"


def test_a_missing_file_or_column_is_a_watchlist_error(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match="missing watchlist"):
        load_watchlist(tmp_path / "absent.csv")
    headless = tmp_path / "watchlist.csv"
    headless.write_text("dc_person_id,name\n188,Liz Truss\n", encoding="utf-8")
    with pytest.raises(WatchlistError, match="no column"):
        load_watchlist(headless)


def test_the_watchlist_file_defaults_to_the_data_dir(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).watchlist_path() == tmp_path / "watchlist.csv"
    chosen = tmp_path / "people.csv"
    assert Settings(data_dir=tmp_path, watchlist_file=chosen).watchlist_path() == chosen
