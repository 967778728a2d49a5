"""The night of 4 July 2024 from the source files: the 22:00 exit poll, then 650 results.

Declaration times come from `declaration-times.csv`, because it records when the returning
officer declared (Houghton and Sunderland South at 23:17, where the Commons Library's
`time_recorded` says 23:30). Its clock times are BST: 18:00-23:59 is polling day (4 July),
00:00-17:59 the day after (5 July). Only a seat listed in `NOT_IN_TIMES_FILE` (Inverness,
Skye and West Ross-shire, declared on Saturday 6 July after a recount) may be missing from
it; that seat takes the Library's `time_recorded` (m/d/yy H:MM, BST), which lags a
declaration by minutes: the lesser error against having no time at all. Any other seat
missing from the times file, a times row naming no seat, or a seat with no time in either
file is an error naming it: every one of the 650 seats is matched, none silently dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from schemas.declaration import Candidate, Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll, ExitPollProjection
from streams.rules.reference import (
    CANDIDATES_FILE,
    CONSTITUENCIES_FILE,
    ReferenceDataError,
    Register,
    load_register,
    open_csv,
    read_csv,
)

TIMES_FILE = "declaration-times.csv"
TIME_RECORDED_FILE = "HoC-GE2024-winning-members-time-recorded.csv"
EXIT_POLL_FILE = "exit-poll.csv"
SOURCE = "replay:ge2024"
# A replay of a night long past is always a rehearsal: said on every message, so no worker
# on a live night ever takes it for results.
REHEARSAL = True
EXIT_POLL_KEY = "exit-poll"

# Seats the times file is known to leave out (see streams/data/ge2024/README.md); any other gap is
# an error, so a damaged times file cannot quietly fall back to the Library's lagging times.
NOT_IN_TIMES_FILE = frozenset({"Inverness, Skye and West Ross-shire"})

# How errors name this builder's files: the night's sources, beside the election's reference.
SOURCE_KIND = "source"

TIMES_SOURCE = "declaration-times"
RECORDED_SOURCE = "time_recorded"


@dataclass(frozen=True)
class Night:
    """The night as a perfect feed publishes it: the exit poll, then results in time order."""

    register: Register
    exit_poll: ExitPoll
    declarations: list[Declaration]
    # Which file each seat's declaration time came from (TIMES_SOURCE or RECORDED_SOURCE).
    time_source: dict[str, str]

    def messages(self) -> list[tuple[str, Declaration | ExitPoll]]:
        """(key, message) in send order: the exit poll, then each result by declaration time."""
        keyed: list[tuple[str, Declaration | ExitPoll]] = [(EXIT_POLL_KEY, self.exit_poll)]
        keyed += [(d.constituency_id, d) for d in self.declarations]
        return keyed


def name_key(name: str) -> str:
    """One spelling of a seat's name across files: '&' as 'and', Hull without 'Kingston
    upon', no accents (Glyndŵr), no commas, case and spacing ignored."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = plain.lower().replace("&", " and ").replace("kingston upon hull", "hull")
    return " ".join(plain.replace(",", " ").split())


def clock_time(clock: str, polling_day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """HH:MM of the count: 18:00-23:59 is polling day, anything earlier the day after."""
    hours, minutes = (int(part) for part in clock.strip().split(":"))
    day = polling_day if hours >= 18 else polling_day + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=tz)


def _seats_by_name(register: Register) -> dict[str, str]:
    by_name: dict[str, str] = {}
    for seat in register:
        key = name_key(seat.name)
        if key in by_name:
            # Two seats reading alike would make every later match a guess.
            other = register.constituencies[by_name[key]].name
            raise ReferenceDataError(f"{seat.name!r} and {other!r} cannot be told apart by name")
        by_name[key] = seat.ons_id
    return by_name


def _times_file(data_dir: Path, register: Register) -> dict[str, dt.datetime]:
    """Times from `declaration-times.csv`, by ONS id; a row naming no seat is an error."""
    tz = register.polls_close.tzinfo
    assert tz is not None  # load_register reads polls_close with its offset
    polling_day = register.polls_close.date()
    by_name = _seats_by_name(register)
    times: dict[str, dt.datetime] = {}
    path = data_dir / TIMES_FILE
    with open_csv(path, SOURCE_KIND) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            # Every row ends with a comma, so its last field is empty; the five fields
            # before that are fixed, and the name is the rest, in case a name with commas
            # arrives unquoted (only one of them is quoted in this file).
            fields = row[:-1] if row and row[-1] == "" else row
            if len(fields) < 6:
                raise ReferenceDataError(f"{path} line {line}: too few fields: {row!r}")
            name, clock = ",".join(fields[:-5]).strip(), fields[-1]
            ons_id = by_name.get(name_key(name))
            if ons_id is None:
                raise ReferenceDataError(f"{path} line {line}: {name!r} matches no constituency")
            if ons_id in times:
                raise ReferenceDataError(f"{path} line {line}: {name!r} appears twice")
            try:
                times[ons_id] = clock_time(clock, polling_day, tz)
            except ValueError as exc:
                raise ReferenceDataError(
                    f"{path} line {line}: bad time {clock!r} for {name}"
                ) from exc
    return times


def _recorded_times(data_dir: Path, register: Register) -> dict[str, dt.datetime]:
    """The Library's `time_recorded` by ONS id (m/d/yy H:MM, BST)."""
    tz = register.polls_close.tzinfo
    path = data_dir / TIME_RECORDED_FILE
    recorded: dict[str, dt.datetime] = {}
    for line, row in enumerate(read_csv(path, SOURCE_KIND), start=2):
        ons_id, text = row.get("ons_id") or "", row.get("time_recorded") or ""
        if ons_id not in register.constituencies:
            raise ReferenceDataError(f"{path} line {line}: unknown constituency {ons_id!r}")
        try:
            recorded[ons_id] = dt.datetime.strptime(text, "%m/%d/%y %H:%M").replace(tzinfo=tz)
        except ValueError as exc:
            raise ReferenceDataError(f"{path} line {line}: bad time_recorded {text!r}") from exc
    return recorded


def declaration_times(
    data_dir: Path, register: Register
) -> tuple[dict[str, dt.datetime], dict[str, str]]:
    """Declaration time of every seat by ONS id, and which file each time came from."""
    times = _times_file(data_dir, register)
    sources = dict.fromkeys(times, TIMES_SOURCE)
    absent = [seat for seat in register if seat.ons_id not in times]
    unexpected = [seat for seat in absent if seat.name not in NOT_IN_TIMES_FILE]
    if unexpected:
        names = ", ".join(
            f"{s.name} ({s.ons_id})" for s in sorted(unexpected, key=lambda s: s.name)
        )
        raise ReferenceDataError(f"{data_dir / TIMES_FILE} has no row for: {names}")
    if absent:
        recorded = _recorded_times(data_dir, register)
        for seat in absent:
            if seat.ons_id not in recorded:
                raise ReferenceDataError(
                    f"no declaration time for {seat.name} ({seat.ons_id}) in {TIMES_FILE} "
                    f"or {TIME_RECORDED_FILE}"
                )
            times[seat.ons_id] = recorded[seat.ons_id]
            sources[seat.ons_id] = RECORDED_SOURCE
    return times, sources


def build_exit_poll(data_dir: Path, register: Register) -> ExitPoll:
    path = data_dir / EXIT_POLL_FILE
    try:
        projections = [
            ExitPollProjection(party=row["party"], seats=int(row["seats"]))
            for row in read_csv(path, SOURCE_KIND)
        ]
        return ExitPoll(
            election_id=register.election_id,
            published_at=register.polls_close,  # published as polls closed, 22:00 BST
            total_seats=register.total_seats,
            projections=projections,
            source=SOURCE,
            rehearsal=REHEARSAL,
        )
    except (KeyError, ValueError) as exc:  # ValidationError is a ValueError
        raise ReferenceDataError(f"{path}: {exc}") from exc


def _votes_by_seat(data_dir: Path) -> dict[str, dict[int, int]]:
    path = data_dir / CANDIDATES_FILE
    votes: dict[str, dict[int, int]] = {}
    for line, row in enumerate(read_csv(path, SOURCE_KIND), start=2):
        try:
            votes.setdefault(row["ONS ID"], {})[int(row["DC Person ID"])] = int(row["Votes"])
        except (KeyError, ValueError) as exc:
            raise ReferenceDataError(f"{path} line {line}: bad votes: {exc}") from exc
    return votes


def _result(
    register: Register, row: dict[str, str], votes: dict[str, dict[int, int]], at: dt.datetime
) -> Declaration:
    seat = register.constituencies[row["ONS ID"]]
    seat_votes = votes.get(seat.ons_id, {})
    missing = [ref.name for ref in seat.candidates.values() if ref.person_id not in seat_votes]
    if missing:
        raise ReferenceDataError(f"{seat.name}: no votes for {', '.join(missing)}")
    top = max(seat_votes.values())
    if sum(1 for v in seat_votes.values() if v == top) > 1:
        raise ReferenceDataError(f"{seat.name}: a tie at the top; the files name no winner")
    # Most votes first, as a returning officer would not, but every graphic wants.
    ranked = sorted(seat.candidates.values(), key=lambda c: (-seat_votes[c.person_id], c.name))
    try:
        return Declaration(
            election_id=register.election_id,
            ballot_id=seat.ballot_id,
            constituency_id=seat.ons_id,
            constituency_name=seat.name,
            kind=DeclarationKind.RESULT,
            revision=1,
            declared_at=at,
            electorate=int(row["Electorate"]),
            valid_votes=int(row["Valid votes"]),
            rejected_ballots=int(row["Invalid votes"]),
            candidates=[
                Candidate(
                    person_id=ref.person_id,
                    name=ref.name,
                    party=ref.party,
                    votes=seat_votes[ref.person_id],
                    elected=seat_votes[ref.person_id] == top,
                )
                for ref in ranked
            ],
            source=SOURCE,
            rehearsal=REHEARSAL,
        )
    except (KeyError, ValueError) as exc:  # a corrupt row, or figures that do not add up
        raise ReferenceDataError(f"{CONSTITUENCIES_FILE}: {seat.name}: {exc}") from exc


def build_night(data_dir: Path) -> Night:
    """The whole night in send order: results by declaration time, then by seat name."""
    data_dir = Path(data_dir)
    register = load_register(data_dir)
    times, sources = declaration_times(data_dir, register)
    exit_poll = build_exit_poll(data_dir, register)
    votes = _votes_by_seat(data_dir)
    declarations = [
        _result(register, row, votes, times[row["ONS ID"]])
        for row in read_csv(data_dir / CONSTITUENCIES_FILE, SOURCE_KIND)
    ]
    declarations.sort(key=lambda d: (d.declared_at, d.constituency_name))
    return Night(register, exit_poll, declarations, sources)
