"""PA's ids to ours, per feed: seat numbers to ONS ids, party ids to parties, candidates to people.

PA's test data uses other ids than its live data, so each feed has its own mapping, shipped
with the election's reference files in `{data_dir}/pa-feeds/{feed}/`:

- `seats.csv`: `pa_seat_number`, `ons_id`, `name`;
- `parties.csv`: `pa_party_id`, `abbreviation`, `ec_id`, `name`, one row per party as the
  Electoral Commission registers it (Labour and Labour and Co-operative share `Lab`);
- `candidates.csv`: `pa_candidate_id`, `dc_person_id`, `ons_id`, `name`.

A mapping is checked against the election's register when loaded: every seat, candidate and
party of the election must have exactly one PA id, or the feed cannot be ingested and the
error says which. Names are there for the people who read the files; ids decide.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from schemas.common import Party
from streams.feeds.pa.refusals import Refusal, RefusalReason
from streams.rules.reference import ReferenceDataError, Register, read_csv

FEEDS_DIR = "pa-feeds"
SEATS_FILE = "seats.csv"
PARTIES_FILE = "parties.csv"
CANDIDATES_FILE = "candidates.csv"
SEAT_COLUMNS = ("pa_seat_number", "ons_id", "name")
PARTY_COLUMNS = ("pa_party_id", "abbreviation", "ec_id", "name")
CANDIDATE_COLUMNS = ("pa_candidate_id", "dc_person_id", "ons_id", "name")

# PA's live data; every other feed (its test data, our made-up `rehearsal`) is a rehearsal's,
# so a feed not named for the live night can never put its declarations on air.
LIVE_FEED = "live"
# A feed name becomes a folder name: nothing that could climb out of FEEDS_DIR.
_FEED_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}", re.ASCII)

V = TypeVar("V", bound=Hashable)


@dataclass(frozen=True)
class MappedCandidate:
    person_id: int  # Democracy Club
    ons_id: str  # the seat the candidate stands in


@dataclass(frozen=True)
class FeedMapping:
    """One feed's ids both ways: PA's to ours for reading, ours to PA's for rendering."""

    feed: str
    ons_ids: Mapping[int, str]
    parties: Mapping[int, Party]
    candidates: Mapping[int, MappedCandidate]
    seat_numbers: Mapping[str, int]
    party_ids: Mapping[Party, int]
    candidate_ids: Mapping[int, int]  # by Democracy Club person id
    # In a state of the parties PA counts a party once (Labour and Labour and Co-operative
    # together): there a party code takes the lowest of its parties' ids.
    totals_party_ids: Mapping[str, int]

    @property
    def source(self) -> str:
        """The declarations' `source`: PA, and which of its feeds."""
        return f"pa:{self.feed}"

    @property
    def rehearsal(self) -> bool:
        """The declarations' `rehearsal`: all but the live feed's."""
        return self.feed != LIVE_FEED

    def ons_id(self, seat_number: int) -> str | Refusal:
        found = self.ons_ids.get(seat_number)
        if found is None:
            return Refusal(
                RefusalReason.PA_UNKNOWN_SEAT, f"PA seat {seat_number} is not in feed {self.feed}"
            )
        return found

    def party(self, pa_id: int) -> Party | Refusal:
        found = self.parties.get(pa_id)
        if found is None:
            return Refusal(
                RefusalReason.PA_UNKNOWN_PARTY, f"PA party {pa_id} is not in feed {self.feed}"
            )
        return found

    def candidate(self, pa_id: int) -> MappedCandidate | Refusal:
        found = self.candidates.get(pa_id)
        if found is None:
            return Refusal(
                RefusalReason.PA_UNKNOWN_CANDIDATE,
                f"PA candidate {pa_id} is not in feed {self.feed}",
            )
        return found


def feed_dir(data_dir: Path, feed: str) -> Path:
    """Where a feed's mapping lives; a name that is not a plain folder name is an error."""
    if not _FEED_NAME.fullmatch(feed):
        raise ReferenceDataError(f"{feed!r} is not a PA feed name (lower case, digits, hyphens)")
    return Path(data_dir) / FEEDS_DIR / feed


def load_feed_mapping(data_dir: Path, feed: str, register: Register) -> FeedMapping:
    """A feed's mapping from its files, checked against the register (ReferenceDataError)."""
    folder = feed_dir(data_dir, feed)
    if not folder.is_dir():
        known = sorted(p.name for p in folder.parent.glob("*") if p.is_dir())
        raise ReferenceDataError(
            f"no PA mapping for feed {feed!r} in {folder.parent} (feeds there: {known or 'none'})"
        )
    return feed_mapping(
        feed,
        _rows(folder / SEATS_FILE, SEAT_COLUMNS),
        _rows(folder / PARTIES_FILE, PARTY_COLUMNS),
        _rows(folder / CANDIDATES_FILE, CANDIDATE_COLUMNS),
        register,
    )


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    rows = read_csv(path, "PA mapping")
    if rows and set(columns) - set(rows[0]):
        raise ReferenceDataError(f"{path}: columns {', '.join(columns)} expected")
    return rows


def feed_mapping(
    feed: str,
    seats: list[dict[str, str]],
    parties: list[dict[str, str]],
    candidates: list[dict[str, str]],
    register: Register,
) -> FeedMapping:
    """A feed's mapping from its rows, each row checked against the register."""
    ons_ids = _one_to_one(
        f"{feed} {SEATS_FILE}", ((_id(row, "pa_seat_number"), row["ons_id"]) for row in seats)
    )
    unknown_seats = sorted(set(ons_ids.values()) - set(register.constituencies))
    missing_seats = sorted(set(register.constituencies) - set(ons_ids.values()))
    if unknown_seats or missing_seats:
        raise ReferenceDataError(
            f"{feed} {SEATS_FILE}: not seats of {register.election_id}: {unknown_seats}; "
            f"seats with no PA number: {missing_seats}"
        )

    by_party = _one_to_one(
        f"{feed} {PARTIES_FILE}",
        ((_id(row, "pa_party_id"), _party(feed, row)) for row in parties),
    )
    nominated = {c.party for seat in register for c in seat.candidates.values()}
    unmapped_parties = sorted(
        f"{p.abbreviation} ({p.name}, {p.ec_id})" for p in nominated - set(by_party.values())
    )
    if unmapped_parties:
        raise ReferenceDataError(f"{feed} {PARTIES_FILE}: no PA id for {unmapped_parties}")

    by_candidate = _one_to_one(
        f"{feed} {CANDIDATES_FILE}",
        (
            (_id(row, "pa_candidate_id"), MappedCandidate(_id(row, "dc_person_id"), row["ons_id"]))
            for row in candidates
        ),
    )
    strangers = sorted(
        f"{c.person_id} in {c.ons_id}"
        for c in by_candidate.values()
        if c.ons_id not in register.constituencies
        or c.person_id not in register.constituencies[c.ons_id].candidates
    )
    mapped_people = {c.person_id for c in by_candidate.values()}
    unmapped_people = sorted(
        f"{c.person_id} in {seat.ons_id}"
        for seat in register
        for c in seat.candidates.values()
        if c.person_id not in mapped_people
    )
    if strangers or unmapped_people:
        raise ReferenceDataError(
            f"{feed} {CANDIDATES_FILE}: not nominated where the row says: {strangers}; "
            f"nominated with no PA id: {unmapped_people}"
        )
    return FeedMapping(
        feed=feed,
        ons_ids=ons_ids,
        parties=by_party,
        candidates=by_candidate,
        seat_numbers={ons_id: number for number, ons_id in ons_ids.items()},
        party_ids={party: pa_id for pa_id, party in by_party.items()},
        candidate_ids={c.person_id: pa_id for pa_id, c in by_candidate.items()},
        totals_party_ids=_lowest_id_per_code(by_party),
    )


def _lowest_id_per_code(parties: Mapping[int, Party]) -> dict[str, int]:
    lowest: dict[str, int] = {}
    for pa_id, party in sorted(parties.items()):
        lowest.setdefault(party.abbreviation, pa_id)
    return lowest


def _id(row: dict[str, str], column: str) -> int:
    text = row.get(column) or ""
    if not text.isascii() or not text.isdigit():
        raise ReferenceDataError(f"{column} {text!r} is not a whole number in row {row}")
    return int(text)


def _party(feed: str, row: dict[str, str]) -> Party:
    try:
        return Party(ec_id=row["ec_id"] or None, abbreviation=row["abbreviation"], name=row["name"])
    except ValueError as exc:  # a ValidationError: an empty abbreviation or name
        raise ReferenceDataError(f"{feed} {PARTIES_FILE}: bad party row {row}: {exc}") from exc


def _one_to_one(what: str, pairs: Iterable[tuple[int, V]]) -> dict[int, V]:
    """PA id -> ours, where each side appears once: two ids for one thing would split it."""
    found: dict[int, V] = {}
    seen: set[V] = set()
    for pa_id, ours in pairs:
        if pa_id in found:
            raise ReferenceDataError(f"{what}: PA id {pa_id} appears twice")
        if ours in seen:
            raise ReferenceDataError(f"{what}: {ours} has two PA ids")
        found[pa_id] = ours
        seen.add(ours)
    return found
