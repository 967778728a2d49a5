"""The night of 4 July 2024 built from the source files: the exit poll, then 650 declarations.

Declaration times: `declaration-times.csv` first, because it records when the returning
officer declared (Houghton and Sunderland South at 23:17). Where it has no row (only
Inverness, Skye and West Ross-shire, which declared on Saturday after a recount) the
Commons Library's `time_recorded` is used: it lags real declarations by minutes, which is
the lesser error. Every seat must be matched across all files; one that is not is an
error naming it, never a silent drop.
"""

from __future__ import annotations

import csv
import datetime as dt
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from schemas.declaration import Candidate, Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll, ExitPollProjection
from streams.reference import (
    CANDIDATES_FILE,
    CONSTITUENCIES_FILE,
    ReferenceDataError,
    Register,
    load_register,
)

TIMES_FILE = "declaration-times.csv"
TIME_RECORDED_FILE = "HoC-GE2024-winning-members-time-recorded.csv"
EXIT_POLL_FILE = "exit-poll.csv"
SOURCE = "replay:ge2024"
EXIT_POLL_KEY = "exit-poll"


@dataclass(frozen=True)
class Night:
    register: Register
    exit_poll: ExitPoll
    declarations: list[Declaration]

    def messages(self) -> list[tuple[str, Declaration | ExitPoll]]:
        """(key, message) in send order: the exit poll, then each declaration by time."""
        keyed: list[tuple[str, Declaration | ExitPoll]] = [(EXIT_POLL_KEY, self.exit_poll)]
        keyed += [(d.constituency_id, d) for d in self.declarations]
        return keyed


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError as exc:
        raise ReferenceDataError(f"missing source file: {path}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReferenceDataError(f"cannot read {path}: {exc}") from exc


def name_key(name: str) -> str:
    """One spelling for a seat's name across files: '&' for 'and', Hull without 'Kingston
    upon', no accents (Glyndŵr), no commas."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = plain.lower().replace("&", "and").replace("kingston upon hull", "hull")
    return " ".join(plain.replace(",", " ").split())


def clock_time(clock: str, polling_day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """HH:MM of the count: 18:00-23:59 is polling day, earlier is the day after."""
    hours, minutes = (int(part) for part in clock.strip().split(":"))
    day = polling_day if hours >= 18 else polling_day + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=tz)


def declaration_times(data_dir: Path, register: Register) -> dict[str, dt.datetime]:
    """Declaration time of every seat, by ONS id; an unknown or unmatched seat is an error."""
    tz = register.polls_close.tzinfo
    assert tz is not None
    polling_day = register.polls_close.date()
    by_name = {name_key(seat.name): seat.ons_id for seat in register}
    times: dict[str, dt.datetime] = {}
    path = data_dir / TIMES_FILE
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                # Every row ends with a comma, so the last field is empty; the five before
                # it are fixed, and the name is the rest (one name holds commas).
                fields = row[:-1] if row and row[-1] == "" else row
                if len(fields) < 6:
                    raise ReferenceDataError(f"{path} line {line}: too few fields: {row!r}")
                name, clock = ",".join(fields[:-5]), fields[-1]
                ons_id = by_name.get(name_key(name))
                if ons_id is None:
                    raise ReferenceDataError(
                        f"{path} line {line}: {name!r} matches no constituency"
                    )
                if ons_id in times:
                    raise ReferenceDataError(f"{path} line {line}: {name!r} appears twice")
                try:
                    times[ons_id] = clock_time(clock, polling_day, tz)
                except ValueError as exc:
                    raise ReferenceDataError(
                        f"{path} line {line}: bad time {clock!r} for {name}"
                    ) from exc
    except FileNotFoundError as exc:
        raise ReferenceDataError(f"missing source file: {path}") from exc
    for recorded_row in _rows(data_dir / TIME_RECORDED_FILE):
        ons_id = recorded_row["ons_id"]
        if ons_id not in register.constituencies:
            raise ReferenceDataError(f"{TIME_RECORDED_FILE}: unknown seat {ons_id}")
        if ons_id not in times:
            recorded = dt.datetime.strptime(recorded_row["time_recorded"], "%m/%d/%y %H:%M")
            times[ons_id] = recorded.replace(tzinfo=tz)
    missing = [seat.name for seat in register if seat.ons_id not in times]
    if missing:
        raise ReferenceDataError(f"no declaration time for: {', '.join(sorted(missing))}")
    return times


def build_exit_poll(data_dir: Path, register: Register) -> ExitPoll:
    projections = [
        ExitPollProjection(party=row["party"], seats=int(row["seats"]))
        for row in _rows(data_dir / EXIT_POLL_FILE)
    ]
    return ExitPoll(
        election_id=register.election_id,
        published_at=register.polls_close,
        total_seats=register.total_seats,
        projections=projections,
        source=SOURCE,
    )


def build_night(data_dir: Path) -> Night:
    """The whole night, in time order (then by name, so equal minutes keep one order)."""
    register = load_register(data_dir)
    times = declaration_times(data_dir, register)
    votes: dict[str, dict[int, int]] = {}
    for row in _rows(data_dir / CANDIDATES_FILE):
        votes.setdefault(row["ONS ID"], {})[int(row["DC Person ID"])] = int(row["Votes"])
    declarations = []
    for row in _rows(data_dir / CONSTITUENCIES_FILE):
        seat = register.constituencies[row["ONS ID"]]
        seat_votes = votes[seat.ons_id]
        top = max(seat_votes.values())
        if sum(1 for v in seat_votes.values() if v == top) > 1:
            raise ReferenceDataError(f"{seat.name}: a tie at the top; the files name no winner")
        candidates = [
            Candidate(
                person_id=ref.person_id,
                name=ref.name,
                party=ref.party,
                votes=seat_votes[ref.person_id],
                elected=seat_votes[ref.person_id] == top,
            )
            for ref in sorted(
                seat.candidates.values(), key=lambda c: (-seat_votes[c.person_id], c.name)
            )
        ]
        declarations.append(
            Declaration(
                election_id=register.election_id,
                ballot_id=seat.ballot_id,
                constituency_id=seat.ons_id,
                constituency_name=seat.name,
                kind=DeclarationKind.RESULT,
                revision=1,
                declared_at=times[seat.ons_id],
                electorate=int(row["Electorate"]),
                valid_votes=int(row["Valid votes"]),
                rejected_ballots=int(row["Invalid votes"]),
                candidates=candidates,
                source=SOURCE,
            )
        )
    declarations.sort(key=lambda d: (d.declared_at, d.constituency_name))
    return Night(register, build_exit_poll(data_dir, register), declarations)
