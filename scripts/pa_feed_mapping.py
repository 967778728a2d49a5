"""Write the PA id mapping of the rehearsal feed from the election's register (or --check it).

We have no PA data, so the rehearsal feed's ids are made up, deterministically, from the
Commons Library's files: seats are numbered 1 to 650 in order of name (then ONS id), as
PA numbers them alphabetically; parties from 1001 in order of abbreviation, Electoral
Commission id and name; candidates from 10001 in order of seat number, then Democracy Club
person id. The ranges do not overlap, so an id used as the wrong kind is never found.

    python -m scripts.pa_feed_mapping            # write data_dir/pa-feeds/rehearsal/
    python -m scripts.pa_feed_mapping --check    # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from streams.feeds.pa.mapping import (
    CANDIDATE_COLUMNS,
    CANDIDATES_FILE,
    PARTIES_FILE,
    PARTY_COLUMNS,
    SEAT_COLUMNS,
    SEATS_FILE,
    feed_dir,
)
from streams.rules.reference import Register, load_register
from streams.settings import get_settings

REHEARSAL_FEED = "rehearsal"
FIRST_PARTY_ID = 1001
FIRST_CANDIDATE_ID = 10001


def rehearsal_files(register: Register) -> dict[str, str]:
    """The rehearsal feed's mapping files by name, as text."""
    seats = sorted(register, key=lambda seat: (seat.name, seat.ons_id))
    parties = sorted(
        {c.party for seat in register for c in seat.candidates.values()},
        key=lambda party: (party.abbreviation, party.ec_id or "", party.name),
    )
    candidates = [
        (seat, candidate)
        for seat in seats
        for candidate in sorted(seat.candidates.values(), key=lambda c: c.person_id)
    ]
    return {
        SEATS_FILE: _csv(
            SEAT_COLUMNS,
            ([number, seat.ons_id, seat.name] for number, seat in enumerate(seats, start=1)),
        ),
        PARTIES_FILE: _csv(
            PARTY_COLUMNS,
            (
                [pa_id, party.abbreviation, party.ec_id or "", party.name]
                for pa_id, party in enumerate(parties, start=FIRST_PARTY_ID)
            ),
        ),
        CANDIDATES_FILE: _csv(
            CANDIDATE_COLUMNS,
            (
                [pa_id, candidate.person_id, seat.ons_id, candidate.name]
                for pa_id, (seat, candidate) in enumerate(candidates, start=FIRST_CANDIDATE_ID)
            ),
        ),
    }


def _csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=get_settings().data_dir)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    folder = feed_dir(args.data_dir, REHEARSAL_FEED)
    files = rehearsal_files(load_register(args.data_dir))
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (folder / name).is_file() or (folder / name).read_text("utf-8") != text
        ]
        if stale:
            print(f"{folder}: out of date: {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"{folder}: up to date")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(files)} in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
