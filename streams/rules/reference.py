"""Reference data of one election: constituencies, nominated candidates, notional 2019 baseline."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TextIO

from schemas.common import Party
from schemas.declaration import Declaration

CANDIDATES_FILE = "HoC-GE2024-results-by-candidate.csv"
CONSTITUENCIES_FILE = "HoC-GE2024-results-by-constituency.csv"
ELECTION_FILE = "election.json"


class ReferenceDataError(RuntimeError):
    """A reference file is missing, unreadable or inconsistent; the message names it."""


@dataclass(frozen=True)
class CandidateRef:
    person_id: int
    name: str
    party: Party


@dataclass(frozen=True)
class ConstituencyRef:
    ons_id: str
    name: str
    ballot_id: str
    region: str
    country: str
    candidates: dict[int, CandidateRef]
    # The notional 2019 result on the 2024 boundaries: the baseline of gain/hold and swing.
    notional_2019_winner: str
    notional_2019_shares: dict[str, float]

    @property
    def notional_2019_majority_share(self) -> float | None:
        shares = sorted(self.notional_2019_shares.values(), reverse=True)
        if len(shares) < 2:
            return None
        return shares[0] - shares[1]


@dataclass(frozen=True)
class Register:
    election_id: str
    name: str
    polls_close: dt.datetime
    total_seats: int
    speaker_party: str
    constituencies: dict[str, ConstituencyRef]
    parties: dict[str, Party] = field(default_factory=dict)

    @property
    def majority_line(self) -> int:
        return self.total_seats // 2 + 1

    def constituency(self, ons_id: str) -> ConstituencyRef | None:
        return self.constituencies.get(ons_id)

    def __iter__(self) -> Iterator[ConstituencyRef]:
        return iter(self.constituencies.values())


@contextmanager
def open_csv(path: Path, kind: str = "reference") -> Iterator[TextIO]:
    """The file opened for the csv module; a missing or unreadable file, found on opening or
    while reading inside the block, is a ReferenceDataError naming it as a `kind` file."""
    try:
        # utf-8-sig: a byte-order mark, as spreadsheets save one, is not read into the first
        # column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            yield handle
    except FileNotFoundError as exc:
        raise ReferenceDataError(f"missing {kind} file: {path}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReferenceDataError(f"cannot read {path}: {exc}") from exc


def read_csv(path: Path, kind: str = "reference") -> list[dict[str, str]]:
    """Every row of a CSV file with a header line, by column name (see open_csv for errors)."""
    return list(csv_rows(path, kind))


def csv_rows(path: Path, kind: str = "reference") -> Iterator[dict[str, str]]:
    """read_csv's rows one at a time: a register of tens of thousands of candidates is never
    held as rows and as the register at once (the rows were most of a worker's peak memory)."""
    with open_csv(path, kind) as handle:
        yield from csv.DictReader(handle)


def _previous_party(result_label: str, winner: str, ons_id: str) -> str:
    # The Library writes "Lab gain from Con" or "SNP hold", against notional 2019 results.
    parts = result_label.split()
    if len(parts) >= 2 and parts[1] == "hold":
        return winner
    if len(parts) == 4 and parts[1:3] == ["gain", "from"]:
        return parts[3]
    raise ReferenceDataError(f"{ons_id}: unreadable Result {result_label!r}")


def load_register(data_dir: Path) -> Register:
    """Read the election's reference files; any inconsistency is an error naming the seat."""
    try:
        meta = json.loads((data_dir / ELECTION_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReferenceDataError(f"missing reference file: {data_dir / ELECTION_FILE}") from exc
    except json.JSONDecodeError as exc:
        raise ReferenceDataError(f"corrupt {data_dir / ELECTION_FILE}: {exc}") from exc
    election_id = meta["election_id"]

    parties: dict[str, Party] = {}
    # One Party object for each party as the file gives it, shared by its candidates (a
    # model each was most of a large register's memory).
    party_objects: dict[tuple[str, str, str], Party] = {}
    candidates_by_seat: dict[str, dict[int, CandidateRef]] = {}
    shares_by_seat: dict[str, dict[str, float]] = {}
    for row in csv_rows(data_dir / CANDIDATES_FILE):
        try:
            ons_id = row["ONS ID"]
            abbreviation = row["Party abbreviation"]
            as_given = (row["Electoral Commission party ID"], abbreviation, row["Party name"])
            party = party_objects.get(as_given)
            if party is None:
                ec_id, _, party_name = as_given
                party = party_objects[as_given] = Party(
                    ec_id=ec_id or None, abbreviation=abbreviation, name=party_name
                )
            person_id = int(row["DC Person ID"])
            name = f"{row['Candidate first name']} {row['Candidate surname']}".strip()
            share = float(row["Share"])
            change = row["Change"]
        except (KeyError, ValueError) as exc:
            raise ReferenceDataError(f"{CANDIDATES_FILE}: bad row {row!r}: {exc}") from exc
        parties.setdefault(abbreviation, party)
        candidates_by_seat.setdefault(ons_id, {})[person_id] = CandidateRef(person_id, name, party)
        if change:
            # Library's change is against the notional 2019 share; a blank means none.
            seat_shares = shares_by_seat.setdefault(ons_id, {})
            seat_shares[abbreviation] = seat_shares.get(abbreviation, 0.0) + max(
                share - float(change), 0.0
            )

    constituencies: dict[str, ConstituencyRef] = {}
    for row in csv_rows(data_dir / CONSTITUENCIES_FILE):
        ons_id = row["ONS ID"]
        name = row["Constituency name"]
        if ons_id not in candidates_by_seat:
            raise ReferenceDataError(f"{ons_id} {name}: no candidates in {CANDIDATES_FILE}")
        constituencies[ons_id] = ConstituencyRef(
            ons_id=ons_id,
            name=name,
            ballot_id=Declaration.ballot_id_of(election_id, name),
            region=row["Region name"],
            country=row["Country name"],
            candidates=candidates_by_seat[ons_id],
            notional_2019_winner=_previous_party(row["Result"], row["First party"], ons_id),
            notional_2019_shares=shares_by_seat.get(ons_id, {}),
        )
    orphans = sorted(set(candidates_by_seat) - set(constituencies))
    if orphans:
        raise ReferenceDataError(f"candidates for unknown constituencies: {', '.join(orphans)}")
    if len(constituencies) != meta["total_seats"]:
        raise ReferenceDataError(
            f"{len(constituencies)} constituencies in {CONSTITUENCIES_FILE}, "
            f"expected {meta['total_seats']}"
        )
    return Register(
        election_id=election_id,
        name=meta.get("name", election_id),
        polls_close=dt.datetime.fromisoformat(meta["polls_close"]),
        total_seats=int(meta["total_seats"]),
        speaker_party=meta.get("speaker_party", "Spk"),
        constituencies=constituencies,
        parties=parties,
    )


@lru_cache(maxsize=4)
def cached_register(data_dir: Path) -> Register:
    return load_register(data_dir)
