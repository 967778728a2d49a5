"""A synthetic election for the benchmark: reference files for N seats and a feed of revisions.

The reference files are written in the formats of `streams/data/ge2024/` and read by the worker
through ELECTION_DATA_DIR, so the benchmark exercises the production path (load_register, validation
against the register, tally rules, alert detectors), only with more seats, revisions and
candidates.

Every seat's winner differs from its notional 2019 winner (each first result is a gain, with an
alert), and every later revision is a correction that moves votes among the also-rans, so the
winner stands, the figures change, and the gain alert is amended: each declaration is applied
and raises at least one alert, which the benchmark times.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import orjson

from schemas.declaration import Declaration
from streams.rules.reference import CANDIDATES_FILE, CONSTITUENCIES_FILE, ELECTION_FILE
from streams.rules.watchlist import COLUMNS as WATCHLIST_COLUMNS
from streams.rules.watchlist import WATCHLIST_FILE

# A night in the past: validation refuses a declaration dated after it was sent (more than
# ELECTION_DECLARED_AT_FUTURE_MARGIN_S ahead), so a synthetic election to come would be all
# dead letters.
# 7 May 2020 was a Thursday whose polls were postponed: no real result shares the date.
ELECTION_ID = "parl.2020-05-07"
POLLS_CLOSE = dt.datetime(2020, 5, 7, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
# Declarations run from an hour after polls close, in the order the feed sends them, as a real
# night's running counts do: each revision round two hours after the one before, its seats a
# tenth of a second apart (72,000 seats fit in a round; the default 10,000 seats of 10
# revisions end 21 hours after polls close). A feed out of time order would make the
# publisher wait for the watermark and amend moments, which is not what is measured. Nothing
# is dated past a day after polls close: a bigger feed shares that last moment rather than pass
# the night's end (ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE, 72 hours by default).
FIRST_DECLARED_AT = POLLS_CLOSE + dt.timedelta(hours=1)
LAST_DECLARED_AT = POLLS_CLOSE + dt.timedelta(hours=24)
REVISION_ROUND = dt.timedelta(hours=2)
SEAT_STEP = dt.timedelta(milliseconds=100)
SOURCE = "bench:synthetic"
# (abbreviation, name, Electoral Commission id): enough parties that candidates never share one.
PARTIES = [
    ("Lab", "Labour Party", "PP53"),
    ("Con", "Conservative and Unionist Party", "PP52"),
    ("LD", "Liberal Democrats", "PP90"),
    ("RUK", "Reform UK", "PP7931"),
    ("Green", "Green Party", "PP63"),
    ("SNP", "Scottish National Party", "PP102"),
    ("PC", "Plaid Cymru", "PP77"),
    ("WPB", "Workers Party of Britain", "PP12589"),
    ("SDP", "Social Democratic Party", "PP12473"),
    ("Yorks", "Yorkshire Party", "PP2055"),
    ("Alba", "Alba Party", "PP12488"),
    ("CPA", "Christian Peoples Alliance", "PP79"),
]
ELECTORATE = 150_000
REJECTED = 120


@dataclass(frozen=True)
class SeatSpec:
    index: int
    ons_id: str
    name: str
    ballot_id: str
    # (person id, first name, surname, party index) in ballot order; the first one wins.
    candidates: list[tuple[int, str, str, int]]


def seat_specs(count: int, candidates: int) -> list[SeatSpec]:
    if not 2 <= candidates <= len(PARTIES):
        raise ValueError(f"candidates per seat must be 2 to {len(PARTIES)}")
    specs = []
    for index in range(count):
        name = f"Benchmark Seat {index:06d}"
        specs.append(
            SeatSpec(
                index=index,
                ons_id=f"E99{index:06d}",
                name=name,
                ballot_id=Declaration.ballot_id_of(ELECTION_ID, name),
                candidates=[
                    (index * 100 + c + 1, f"Candidate{c}", f"Seat{index}", (index + c) % 12)
                    for c in range(candidates)
                ],
            )
        )
    return specs


def _votes(seat: SeatSpec, revision: int) -> list[int]:
    """Votes by ballot order: the winner well clear, the rest shuffled a little per revision."""
    votes = [30_000]
    for place in range(1, len(seat.candidates)):
        votes.append(max(20_000 - 3_000 * place, 500) + (seat.index * 7 + revision * 131) % 997)
    return votes


def write_reference_files(folder: Path, seats: list[SeatSpec]) -> Path:
    """The election's reference files in `folder` (created), as load_register reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ELECTION_FILE).write_text(
        json.dumps(
            {
                "election_id": ELECTION_ID,
                "name": "Benchmark election (synthetic)",
                "timezone": "Europe/London",
                "polls_close": POLLS_CLOSE.isoformat(),
                "total_seats": len(seats),
                "speaker_party": "Spk",
            }
        ),
        encoding="utf-8",
    )
    with (folder / CANDIDATES_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "ONS ID",
                "Party abbreviation",
                "Electoral Commission party ID",
                "Party name",
                "DC Person ID",
                "Candidate first name",
                "Candidate surname",
                "Share",
                "Change",
            ]
        )
        for seat in seats:
            votes = _votes(seat, 1)
            valid = sum(votes)
            for place, (person_id, first, surname, party) in enumerate(seat.candidates):
                abbreviation, name, ec_id = PARTIES[party]
                share = votes[place] / valid
                # Notional 2019: the runner-up held the seat (so every result is a gain), by a
                # margin well under the shock threshold.
                notional = {0: 0.30, 1: 0.36}.get(place, share)
                writer.writerow(
                    [
                        seat.ons_id,
                        abbreviation,
                        ec_id,
                        name,
                        person_id,
                        first,
                        surname,
                        f"{share:.6f}",
                        f"{share - notional:.6f}",
                    ]
                )
    with (folder / CONSTITUENCIES_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["ONS ID", "Constituency name", "Region name", "Country name", "Result", "First party"]
        )
        for seat in seats:
            winner = PARTIES[seat.candidates[0][3]][0]
            previous = PARTIES[seat.candidates[1][3]][0]
            writer.writerow(
                [
                    seat.ons_id,
                    seat.name,
                    "Bench",
                    "England",
                    f"{winner} gain from {previous}",
                    winner,
                ]
            )
    with (folder / WATCHLIST_FILE).open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(WATCHLIST_COLUMNS)
    return folder


def declaration_bytes(seat: SeatSpec, revision: int) -> bytes:
    """One revision of a seat as a feed sends it: a result first, corrections after."""
    votes = _votes(seat, revision)
    declared_at = min(
        FIRST_DECLARED_AT + (revision - 1) * REVISION_ROUND + seat.index * SEAT_STEP,
        LAST_DECLARED_AT,
    )
    return orjson.dumps(
        {
            "schema_version": "1",
            "message_type": "declaration",
            "election_id": ELECTION_ID,
            "ballot_id": seat.ballot_id,
            "constituency_id": seat.ons_id,
            "constituency_name": seat.name,
            "kind": "result" if revision == 1 else "correction",
            "revision": revision,
            "declared_at": declared_at.isoformat(),
            "electorate": ELECTORATE,
            "valid_votes": sum(votes),
            "rejected_ballots": REJECTED,
            "candidates": [
                {
                    "person_id": person_id,
                    "name": f"{first} {surname}",
                    "party": {
                        "ec_id": PARTIES[party][2],
                        "abbreviation": PARTIES[party][0],
                        "name": PARTIES[party][1],
                    },
                    "votes": votes[place],
                    "elected": place == 0,
                }
                for place, (person_id, first, surname, party) in enumerate(seat.candidates)
            ],
            "tie_declared": False,
            "source": SOURCE,
        }
    )


@dataclass(frozen=True)
class FeedItem:
    key: bytes
    value: bytes
    seat: str
    revision: int


def feed(seats: list[SeatSpec], revisions: int) -> list[FeedItem]:
    """Running counts: every seat's revision 1, then every seat's revision 2, and so on."""
    return [
        FeedItem(seat.ons_id.encode(), declaration_bytes(seat, revision), seat.ons_id, revision)
        for revision in range(1, revisions + 1)
        for seat in seats
    ]
