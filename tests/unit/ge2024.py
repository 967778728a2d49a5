"""The official 2024 figures, computed independently from the Commons Library's files."""

from __future__ import annotations

import csv
from collections import Counter
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"

# Seats won, as the issue states them from the official results.
OFFICIAL_SEATS = {
    "Lab": 411,
    "Con": 121,
    "LD": 72,
    "SNP": 9,
    "SF": 7,
    "Ind": 6,
    "RUK": 5,
    "DUP": 5,
    "Green": 4,
    "PC": 4,
    "SDLP": 2,
    "Spk": 1,
    "APNI": 1,
    "TUV": 1,
    "UUP": 1,
}
OFFICIAL_VALID_VOTES = 28_808_662


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@cache
def constituency_rows() -> dict[str, dict[str, str]]:
    return {row["ONS ID"]: row for row in _rows("HoC-GE2024-results-by-constituency.csv")}


@cache
def votes_by_party() -> Counter[str]:
    votes: Counter[str] = Counter()
    for row in _rows("HoC-GE2024-results-by-candidate.csv"):
        votes[row["Party abbreviation"]] += int(row["Votes"])
    return votes


@cache
def gains_and_losses() -> tuple[Counter[str], Counter[str]]:
    """From the Library's `Result` column: 'Lab gain from Con' is a Lab gain and a Con loss."""
    gains: Counter[str] = Counter()
    losses: Counter[str] = Counter()
    for row in constituency_rows().values():
        words = row["Result"].split()
        if words[1] == "gain":
            gains[words[0]] += 1
            losses[words[3]] += 1
    return gains, losses
