"""People of note on election night, keyed by Democracy Club person id, read from a CSV."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from streams.rules.reference import Register

WATCHLIST_FILE = "watchlist.csv"
COLUMNS = ("dc_person_id", "first_name", "surname", "ons_id", "constituency", "party", "category")
_ONS_ID = re.compile(r"^[ENSW]\d{8}$")


class WatchCategory(StrEnum):
    """Why a person's result is news; the alert type follows from it."""

    PRIME_MINISTER = "prime_minister"
    FORMER_PRIME_MINISTER = "former_prime_minister"
    CABINET = "cabinet"  # full members of the cabinet at dissolution
    ATTENDS_CABINET = "attends_cabinet"  # ministers who attend cabinet but are not members
    SHADOW_CABINET = "shadow_cabinet"
    PARTY_LEADER = "party_leader"
    FORMER_PARTY_LEADER = "former_party_leader"
    SPEAKER = "speaker"


class WatchlistError(ValueError):
    """A watchlist row is unusable; the message names the file, the line and the person."""


@dataclass(frozen=True)
class PersonOfNote:
    person_id: int
    name: str
    constituency_id: str
    constituency_name: str
    party: str
    category: WatchCategory
    role: str


@dataclass(frozen=True)
class Watchlist:
    """The people whose results are alerts, by Democracy Club person id (never by name)."""

    people: Mapping[int, PersonOfNote] = field(default_factory=dict)

    def get(self, person_id: int) -> PersonOfNote | None:
        return self.people.get(person_id)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self.people

    def __iter__(self) -> Iterator[PersonOfNote]:
        return iter(self.people.values())

    def __len__(self) -> int:
        return len(self.people)

    def in_category(self, category: WatchCategory) -> list[PersonOfNote]:
        return [person for person in self if person.category is category]


def _person(row: Mapping[str, str | None], where: str) -> PersonOfNote:
    missing = [column for column in COLUMNS if not (row.get(column) or "").strip()]
    if missing:
        raise WatchlistError(f"{where}: missing {', '.join(missing)}")

    def value(column: str) -> str:
        return (row.get(column) or "").strip()

    name = f"{value('first_name')} {value('surname')}"
    where = f"{where} ({name})"
    try:
        person_id = int(value("dc_person_id"))
    except ValueError:
        raise WatchlistError(
            f"{where}: dc_person_id {value('dc_person_id')!r} is not a number"
        ) from None
    if person_id <= 0:
        raise WatchlistError(f"{where}: dc_person_id must be positive")
    try:
        category = WatchCategory(value("category"))
    except ValueError:
        known = ", ".join(c.value for c in WatchCategory)
        raise WatchlistError(
            f"{where}: unknown category {value('category')!r} (known: {known})"
        ) from None
    if not _ONS_ID.match(value("ons_id")):
        raise WatchlistError(f"{where}: ons_id {value('ons_id')!r} is not an ONS constituency id")
    return PersonOfNote(
        person_id=person_id,
        name=name,
        constituency_id=value("ons_id"),
        constituency_name=value("constituency"),
        party=value("party"),
        category=category,
        # A role is optional: the category alone says why the result matters.
        role=value("role") or category.value.replace("_", " "),
    )


def parse_watchlist(rows: Iterable[Mapping[str, str | None]], source: str) -> Watchlist:
    """Validate every row; the first bad one stops the load with an error naming it."""
    people: dict[int, PersonOfNote] = {}
    # Line 1 is the header, so the first person is on line 2, as an editor would count.
    for line, row in enumerate(rows, start=2):
        person = _person(row, f"{source} line {line}")
        if person.person_id in people:
            first = people[person.person_id]
            raise WatchlistError(
                f"{source} line {line} ({person.name}): person {person.person_id} is listed "
                f"twice (also as {first.name}, {first.category})"
            )
        people[person.person_id] = person
    return Watchlist(people)


def load_watchlist(path: Path) -> Watchlist:
    """Read and validate a watchlist CSV (columns as in streams/data/ge2024/watchlist.csv)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if absent:
                raise WatchlistError(f"{path}: no column {', '.join(absent)}")
            return parse_watchlist(reader, path.name)
    except FileNotFoundError as exc:
        raise WatchlistError(f"missing watchlist: {path}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WatchlistError(f"cannot read {path}: {exc}") from exc


def check_against_register(watchlist: Watchlist, register: Register) -> list[str]:
    """Problems found when each person is looked up in the seat the watchlist names.

    Empty when every person was nominated in that seat for the named party. Alerts match
    people by person id among a seat's candidates, so a wrong seat here means a silent miss.
    """
    problems: list[str] = []
    for person in sorted(watchlist, key=lambda p: p.person_id):
        who = f"{person.name} ({person.person_id})"
        seat = register.constituency(person.constituency_id)
        if seat is None:
            problems.append(f"{who}: {person.constituency_id} is not a constituency")
            continue
        candidate = seat.candidates.get(person.person_id)
        if candidate is None:
            problems.append(f"{who}: not a candidate in {seat.name} ({seat.ons_id})")
            continue
        if candidate.party.abbreviation != person.party:
            problems.append(
                f"{who}: stands for {candidate.party.abbreviation} in {seat.name}, "
                f"not {person.party}"
            )
        if person.constituency_name and person.constituency_name != seat.name:
            problems.append(f"{who}: seat is {seat.name!r}, not {person.constituency_name!r}")
    return problems
