"""The 2024 night as the alert detectors see it: declarations in order, seat results and tallies.

A small stand-in for scripts/night_builder.py and streams/rules/tally.py while those are written:
just enough arithmetic (winner, majority, gain against notional 2019, seats per party) to
feed the detectors the real night.
"""

from __future__ import annotations

import csv
import datetime as dt
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from schemas.declaration import Candidate, Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll, ExitPollProjection
from schemas.results import CandidateResult, PartyTally, SeatResult, StateOfParties
from streams.rules.alerts import AppliedChange
from streams.rules.reference import CANDIDATES_FILE, CONSTITUENCIES_FILE, Register

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
BST = dt.timezone(dt.timedelta(hours=1))
POLLING_DAY = dt.date(2024, 7, 4)
SOURCE = "replay:ge2024"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _name_key(name: str) -> str:
    # The times file writes '&', drops 'Kingston upon' from Hull and the circumflex of Glyndŵr.
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = plain.lower().replace("&", "and").replace("kingston upon hull", "hull")
    return " ".join(plain.replace(",", " ").split())


def _clock_to_datetime(clock: str) -> dt.datetime:
    # 22:00-23:59 is polling night; everything else is the Friday (the 17:xx rows included).
    hours, minutes = (int(part) for part in clock.split(":"))
    day = POLLING_DAY if hours >= 22 else POLLING_DAY + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=BST)


def declaration_times(data_dir: Path, register: Register) -> dict[str, dt.datetime]:
    """Declaration time per ONS id: the times file, else the Library's time recorded."""
    by_key = {_name_key(seat.name): seat.ons_id for seat in register}
    times: dict[str, dt.datetime] = {}
    with (data_dir / "declaration-times.csv").open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            # Names with commas are mostly unquoted: the last six fields are fixed, the rest is
            # the name (the trailing comma makes an empty sixth).
            name, clock = ",".join(row[:-6]), row[-2]
            ons_id = by_key.get(_name_key(name))
            if ons_id is None:
                raise AssertionError(f"declaration-times.csv: unknown seat {name!r}")
            times[ons_id] = _clock_to_datetime(clock)
    for winner in _rows(data_dir / "HoC-GE2024-winning-members-time-recorded.csv"):
        if winner["ons_id"] not in times:
            recorded = dt.datetime.strptime(winner["time_recorded"], "%m/%d/%y %H:%M")
            times[winner["ons_id"]] = recorded.replace(tzinfo=BST)
    return times


def night_declarations(data_dir: Path, register: Register) -> list[Declaration]:
    """Every seat's full result, revision 1, in declaration order (time, then ONS id)."""
    times = declaration_times(data_dir, register)
    votes: dict[str, dict[int, int]] = {}
    for row in _rows(data_dir / CANDIDATES_FILE):
        votes.setdefault(row["ONS ID"], {})[int(row["DC Person ID"])] = int(row["Votes"])
    declarations = []
    for row in _rows(data_dir / CONSTITUENCIES_FILE):
        seat = register.constituencies[row["ONS ID"]]
        seat_votes = votes[seat.ons_id]
        top = max(seat_votes.values())
        candidates = [
            Candidate(
                person_id=ref.person_id,
                name=ref.name,
                party=ref.party,
                votes=seat_votes[ref.person_id],
                elected=seat_votes[ref.person_id] == top,
            )
            for ref in sorted(seat.candidates.values(), key=lambda c: -seat_votes[c.person_id])
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
    return sorted(declarations, key=lambda d: (d.declared_at, d.constituency_id))


def exit_poll(data_dir: Path, register: Register) -> ExitPoll:
    projections = [
        ExitPollProjection(party=row["party"], seats=int(row["seats"]))
        for row in _rows(data_dir / "exit-poll.csv")
    ]
    return ExitPoll(
        election_id=register.election_id,
        published_at=register.polls_close,
        total_seats=register.total_seats,
        projections=projections,
        source="exit poll (BBC/ITV/Sky)",
    )


def seat_result(declaration: Declaration, register: Register, sequence: int) -> SeatResult:
    """The seat after one declaration: winner, majority, gain against notional 2019."""
    seat = register.constituencies[declaration.constituency_id]
    counted = declaration.has_full_figures
    valid = declaration.valid_votes or 0
    ranked = sorted(declaration.candidates, key=lambda c: -(c.votes or 0))
    candidates = [
        CandidateResult(
            person_id=c.person_id,
            name=c.name,
            party=c.party.abbreviation,
            party_name=c.party.name,
            votes=c.votes if counted else None,
            share=(c.votes or 0) / valid if counted and valid else None,
            elected=c.elected,
        )
        for c in ranked
    ]
    winner = next((c for c in candidates if c.elected), None)
    majority = None
    if counted and winner is not None and len(ranked) > 1:
        majority = (ranked[0].votes or 0) - (ranked[1].votes or 0)
    previous = seat.notional_2019_winner
    gain = winner is not None and winner.party != previous
    label = None
    if winner is not None:
        label = f"{winner.party} gain from {previous}" if gain else f"{winner.party} hold"
    return SeatResult(
        election_id=declaration.election_id,
        ballot_id=declaration.ballot_id,
        constituency_id=declaration.constituency_id,
        constituency_name=declaration.constituency_name,
        kind=declaration.kind,
        revision=declaration.revision,
        declared_at=declaration.declared_at,
        sequence=sequence,
        figures_pending=declaration.kind is DeclarationKind.RUSH,
        recount=declaration.kind is DeclarationKind.RECOUNT,
        winning_party=winner.party if winner else None,
        winner=winner,
        tie=declaration.tie_declared,
        previous_party=previous,
        gain=gain,
        result_label=label,
        electorate=declaration.electorate,
        valid_votes=declaration.valid_votes,
        rejected_ballots=declaration.rejected_ballots,
        majority=majority,
        majority_share=majority / valid if majority is not None and valid else None,
        candidates=candidates,
        rehearsal=declaration.rehearsal,
    )


@dataclass
class NightTally:
    """Seats per party as revisions are applied, as the real tally keeps them (in memory)."""

    register: Register
    seats: dict[str, SeatResult] = field(default_factory=dict)
    declared: dict[str, SeatResult] = field(default_factory=dict)  # latest with a winner
    sequence: int = 0
    state: StateOfParties | None = None

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = self._state(None, None)

    def clone(self) -> NightTally:
        """A tally to try corrections on without disturbing this one (results are frozen)."""
        return NightTally(
            self.register, dict(self.seats), dict(self.declared), self.sequence, self.state
        )

    def apply(self, declaration: Declaration) -> AppliedChange:
        previous = self.seats.get(declaration.constituency_id)
        last_declared = self.declared.get(declaration.constituency_id)
        self.sequence += 1
        result = seat_result(declaration, self.register, self.sequence)
        before = self.state
        assert before is not None
        self.seats[result.constituency_id] = result
        if result.winner is not None:
            self.declared[result.constituency_id] = result
        self.state = self._state(result.declared_at, result.constituency_id)
        return AppliedChange(
            result=result,
            previous=previous,
            state_before=before,
            state_after=self.state,
            last_declared=last_declared,
        )

    def _state(self, as_of: dt.datetime | None, last: str | None) -> StateOfParties:
        tallies: dict[str, dict[str, int]] = {}
        declared = 0
        for result in self.seats.values():
            if result.winning_party is None:
                continue  # a recount notice: not declared yet
            declared += 1
            won = tallies.setdefault(result.winning_party, {"seats": 0, "gains": 0, "losses": 0})
            won["seats"] += 1
            if result.gain:
                won["gains"] += 1
                lost = tallies.setdefault(
                    result.previous_party or "", {"seats": 0, "gains": 0, "losses": 0}
                )
                lost["losses"] += 1
        names = {code: party.name for code, party in self.register.parties.items()}
        parties = sorted(
            (
                PartyTally(
                    party=code,
                    name=names.get(code, code),
                    seats=t["seats"],
                    gains=t["gains"],
                    losses=t["losses"],
                    seats_change=t["gains"] - t["losses"],
                )
                for code, t in tallies.items()
                if code
            ),
            key=lambda t: (-t.seats, t.party),
        )
        contenders = [t for t in parties if t.party != self.register.speaker_party]
        line = self.register.majority_line
        return StateOfParties(
            election_id=self.register.election_id,
            rehearsal=True,
            sequence=self.sequence,
            as_of=as_of,
            total_seats=self.register.total_seats,
            majority_line=line,
            seats_declared=declared,
            largest_party=contenders[0].party if contenders else None,
            majority_party=next((t.party for t in contenders if t.seats >= line), None),
            last_constituency_id=last,
            parties=parties,
        )


def replay(tally: NightTally, declarations: list[Declaration]) -> Iterator[AppliedChange]:
    for declaration in declarations:
        yield tally.apply(declaration)


def revised(
    declaration: Declaration,
    revision: int,
    kind: DeclarationKind = DeclarationKind.CORRECTION,
    votes: dict[int, int] | None = None,
    minutes_later: int = 60,
) -> Declaration:
    """Another revision of a seat: new votes by person id (the most votes is elected), or for
    a rush or recount notice the same candidates without votes."""
    counted = {c.person_id: c.votes or 0 for c in declaration.candidates} | (votes or {})
    top = max(counted.values())
    full = kind in (DeclarationKind.RESULT, DeclarationKind.CORRECTION)
    candidates = [
        c.model_dump()
        | {
            "votes": counted[c.person_id] if full else None,
            "elected": kind is not DeclarationKind.RECOUNT and counted[c.person_id] == top,
        }
        for c in declaration.candidates
    ]
    # Validated like a real message, so a test cannot feed the detectors an impossible one.
    return Declaration.model_validate(
        declaration.model_dump()
        | {
            "kind": kind,
            "revision": revision,
            "declared_at": declaration.declared_at + dt.timedelta(minutes=minutes_later),
            "candidates": candidates,
            "valid_votes": sum(counted.values()) if full else declaration.valid_votes,
        }
    )
