"""Where the declared results point: each party's final seats if the swing seen so far held."""

# The model is the broadcasters' oldest: take each declared seat's change in share against its
# notional 2019 result, average it, add the average to the notional 2019 shares of every seat
# not yet declared, and give each such seat to the party then ahead. "Uniform" averages over
# every declared seat. "Regional" averages within the seat's region once enough of the region
# has declared, else within its nation (England, Scotland, Wales, Northern Ireland), else
# nationally: Scotland's and Northern Ireland's parties move on their own, which a national
# average dilutes. Seats already declared count as declared, rushes included.
#
# The range comes from resampling the declared seats with replacement (a bootstrap): the
# projections of the resampled averages, 5th to 95th percentile. It says how much the answer
# rests on which seats happen to have declared, not how wrong the model is.

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from schemas.exit_poll import ExitPoll
from schemas.results import ProjectedParty, SeatProjection, SeatResult
from streams.rules.reference import Register

Model = Literal["uniform", "regional"]
MODELS: tuple[Model, ...] = ("uniform", "regional")
# What an undeclared seat's projection rested on, under the regional model.
Level = Literal["region", "nation", "national"]

# A party's notional 2019 share must reach this in some seat for it to be projected at all.
CONTENDER_SHARE = 0.05

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DeclaredSeat:
    """A declared seat as the projection needs it: who won, and each party's share now
    (empty while the figures are pending, as after a rush)."""

    ons_id: str
    winning_party: str | None
    shares: Mapping[str, float]


@dataclass(frozen=True)
class PartyProjection:
    party: str
    seats: int  # declared seats won plus undeclared seats projected
    low: int  # 5th percentile over the resamples
    high: int  # 95th percentile over the resamples
    declared: int  # seats already won


@dataclass(frozen=True)
class Projection:
    model: Model
    seats_declared: int
    seats_with_figures: int  # the declared seats whose share changes the swing is made of
    parties: list[PartyProjection]
    levels: dict[str, int] = field(default_factory=dict)  # undeclared seats by swing used

    def seats_of(self, party: str) -> int:
        return next((p.seats for p in self.parties if p.party == party), 0)


@dataclass(frozen=True)
class Baseline:
    """The notional 2019 shares of every seat, as arrays, built once per register."""

    seats: tuple[str, ...]
    parties: tuple[str, ...]
    notional: FloatArray  # seats x parties
    region_of: IntArray  # seat -> region group
    nation_of: IntArray  # seat -> nation group
    regions: int
    nations: int

    @classmethod
    def of(cls, register: Register) -> Baseline:
        refs = sorted(register.constituencies.values(), key=lambda ref: ref.ons_id)
        # Only a party with a real baseline somewhere can be projected to win a seat; the
        # rest (dozens of small parties) would cost time in every projection and win none.
        parties = sorted(
            {
                party
                for ref in refs
                for party, share in ref.notional_2019_shares.items()
                if share >= CONTENDER_SHARE
            }
        )
        column = {party: i for i, party in enumerate(parties)}
        notional = np.zeros((len(refs), len(parties)))
        for row, ref in enumerate(refs):
            for party, share in ref.notional_2019_shares.items():
                if party in column:
                    notional[row, column[party]] = share
        regions = sorted({ref.region for ref in refs})
        nations = sorted({ref.country for ref in refs})
        return cls(
            seats=tuple(ref.ons_id for ref in refs),
            parties=tuple(parties),
            notional=notional,
            region_of=np.array([regions.index(ref.region) for ref in refs], dtype=np.int64),
            nation_of=np.array([nations.index(ref.country) for ref in refs], dtype=np.int64),
            regions=len(regions),
            nations=len(nations),
        )

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        return {ons_id: row for row, ons_id in enumerate(self.seats)}

    @functools.cached_property
    def column_of(self) -> dict[str, int]:
        return {party: column for column, party in enumerate(self.parties)}


def _changes(
    baseline: Baseline, rows: Sequence[int], declared: Sequence[DeclaredSeat]
) -> FloatArray:
    """Each declared seat's change in share against its notional 2019 share, by party."""
    column = baseline.column_of
    now = np.zeros((len(rows), len(baseline.parties)))
    for i, seat in enumerate(declared):
        for party, share in seat.shares.items():
            at = column.get(party)
            if at is not None:  # a party in no notional result and no register: no baseline
                now[i, at] = share
    changes: FloatArray = now - baseline.notional[list(rows)]
    return changes


def _swings(
    baseline: Baseline,
    model: Model,
    rows: IntArray,
    changes: FloatArray,
    weights: FloatArray,
    undeclared: IntArray,
    min_region_seats: int,
) -> tuple[FloatArray, list[Level]]:
    """The swing applied to each undeclared seat under each weighting of the declared seats
    (weightings x seats x parties), and the level each seat's swing came from in the first
    weighting, the declared seats as they are.

    A resample is a weighting: how many times each declared seat was drawn. Every mean is a
    matrix product; each seat then picks its row from one table of national, nation and
    region means, so the big array is made once.
    """
    national = (weights @ changes) / weights.sum(axis=1, keepdims=True)  # weightings x parties
    tables = [national[:, None, :]]
    source = np.zeros((len(weights), len(undeclared)), dtype=np.int64)  # row in the table
    levels: list[Level] = ["national"] * len(undeclared)
    if model == "regional":
        parties = changes.shape[1]
        offset = 1
        finer: tuple[tuple[IntArray, int, Level], ...] = (
            (baseline.nation_of, baseline.nations, "nation"),
            (baseline.region_of, baseline.regions, "region"),
        )
        for groups, count, level in finer:  # a region with enough seats overrides its nation
            member = np.zeros((len(rows), count))
            member[np.arange(len(rows)), groups[rows]] = 1.0
            seats = weights @ member  # weightings x groups
            by_group = (member[:, :, None] * changes[:, None, :]).reshape(len(rows), -1)
            sums = (weights @ by_group).reshape(len(weights), count, parties)
            tables.append(sums / np.maximum(seats, 1.0)[:, :, None])
            group = groups[undeclared]
            enough = seats[:, group] >= min_region_seats  # weightings x undeclared seats
            source = np.where(enough, offset + group[None, :], source)
            for i in np.flatnonzero(enough[0]):
                levels[i] = level
            offset += count
    table = np.concatenate(tables, axis=1)  # weightings x (1 + nations + regions) x parties
    swing: FloatArray = table[np.arange(len(weights))[:, None], source]
    return swing, levels


def project(
    baseline: Baseline,
    declared: Iterable[DeclaredSeat],
    model: Model = "regional",
    min_region_seats: int = 8,
    resamples: int = 100,
    seed: int = 20240704,
) -> Projection | None:
    """The final seats the declared results point to; None before any seat has figures.

    Deterministic for a given set of declared seats (a seeded resampling): the same night
    told twice, or by two workers, projects the same.
    """
    row_of = baseline.row_of
    # In the baseline's order, so the resampling draws the same seats whatever order the
    # declared seats came in.
    seats = sorted(
        (seat for seat in declared if seat.ons_id in row_of), key=lambda seat: row_of[seat.ons_id]
    )
    won = np.zeros(len(baseline.parties), dtype=np.int64)
    column = baseline.column_of
    others: dict[str, int] = {}  # declared wins of parties with no baseline to project
    for seat in seats:
        if seat.winning_party in column:
            won[column[seat.winning_party]] += 1
        elif seat.winning_party is not None:
            others[seat.winning_party] = others.get(seat.winning_party, 0) + 1
    with_figures = [seat for seat in seats if seat.shares]
    if not with_figures:
        return None
    rows = np.array([row_of[seat.ons_id] for seat in with_figures], dtype=np.int64)
    changes = _changes(baseline, list(rows), with_figures)
    declared_rows = {row_of[seat.ons_id] for seat in seats}
    undeclared = np.array(
        [row for row in range(len(baseline.seats)) if row not in declared_rows], dtype=np.int64
    )
    rng = np.random.default_rng(seed)
    # Row 0 is the declared seats themselves; the others are resamples of them, as counts of
    # how often each seat was drawn.
    drawn = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=max(resamples, 1))
    weights = np.vstack([np.ones((1, len(rows))), drawn]).astype(np.float64)
    swing, levels = _swings(baseline, model, rows, changes, weights, undeclared, min_region_seats)
    shares = np.maximum(baseline.notional[undeclared][None, :, :] + swing, 0.0)
    winners = shares.argmax(axis=2)  # resamples x undeclared seats
    totals = (
        np.stack([np.bincount(row, minlength=len(baseline.parties)) for row in winners])
        + won[None, :]
    )  # resamples x parties
    central = totals[0]
    low = np.percentile(totals[1:], 5, axis=0, method="lower")
    high = np.percentile(totals[1:], 95, axis=0, method="higher")
    parties = [
        PartyProjection(
            party=party,
            seats=int(central[i]),
            low=int(min(low[i], central[i])),
            high=int(max(high[i], central[i])),
            declared=int(won[i]),
        )
        for i, party in enumerate(baseline.parties)
        if central[i] or high[i] or won[i]
    ]
    parties += [PartyProjection(party, n, n, n, n) for party, n in others.items()]
    parties.sort(key=lambda p: (-p.seats, p.party))
    counted: dict[str, int] = {}
    for level in levels:
        counted[level] = counted.get(level, 0) + 1
    return Projection(
        model=model,
        seats_declared=len(seats),
        seats_with_figures=len(with_figures),
        parties=parties,
        levels=counted if model == "regional" else {"national": len(levels)},
    )


def declared_seat(result: SeatResult) -> DeclaredSeat:
    """A seat's latest result as the projection reads it: shares only once figures are in."""
    shares: dict[str, float] = {}
    if not result.figures_pending:
        for candidate in result.candidates:
            if candidate.share is not None:
                shares[candidate.party] = shares.get(candidate.party, 0.0) + candidate.share
    return DeclaredSeat(result.constituency_id, result.winning_party, shares)


class RunningProjection:
    """The projection's central figures (no range), kept seat by seat: what the exit-poll
    tracking reads after every step of the night.

    `project` builds every declared seat's share changes afresh from its result, which is
    most of its cost; here each seat's are made once, when it is put in, so projecting after
    each of the night's 650 steps costs a small part of one projection with its resamples.
    The figures are those of `project` for the same seats (tested over the 2024 night).
    """

    def __init__(self, projecting: Projecting) -> None:
        self.projecting = projecting
        baseline = projecting.baseline
        count, parties = len(baseline.seats), len(baseline.parties)
        # Where each seat's swing may come from, as columns: the nation as a whole (0), its
        # nation (1...), its region (after the nations). Each group's sums are then one
        # matrix product over every seat, those without figures adding zeros.
        rows = np.arange(count)
        self._nation = 1 + baseline.nation_of
        self._region = 1 + baseline.nations + baseline.region_of
        membership = np.zeros((1 + baseline.nations + baseline.regions, count))
        membership[0] = 1.0
        membership[self._nation, rows] = 1.0
        membership[self._region, rows] = 1.0
        self._membership = membership
        self._changes = np.zeros((count, parties))
        self._with_figures = np.zeros(count, dtype=bool)
        self._declared = np.zeros(count, dtype=bool)
        self._won = np.full(count, -1, dtype=np.int64)  # the winner's column; -1: none
        self._won_elsewhere: dict[int, str] = {}  # row -> a winner with no baseline column

    @property
    def seats_with_figures(self) -> int:
        return int(self._with_figures.sum())

    def changes_of(self, seat: DeclaredSeat) -> FloatArray:
        """The seat's change in share by party against its notional 2019 result (zeros while
        its figures are pending or for a seat not in the baseline)."""
        baseline = self.projecting.baseline
        row = baseline.row_of.get(seat.ons_id)
        if row is None or not seat.shares:
            return np.zeros(len(baseline.parties))
        changes: FloatArray = _changes(baseline, [row], [seat])[0]
        return changes

    def put(self, seat: DeclaredSeat, changes: FloatArray | None = None) -> None:
        """The seat as it now stands, in place of what it was; `changes` are its
        `changes_of`, when the caller kept them."""
        baseline = self.projecting.baseline
        row = baseline.row_of.get(seat.ons_id)
        if row is None:
            return
        self._declared[row] = True
        column = baseline.column_of.get(seat.winning_party or "", -1)
        self._won[row] = column
        self._won_elsewhere.pop(row, None)
        if column < 0 and seat.winning_party is not None:
            self._won_elsewhere[row] = seat.winning_party
        self._with_figures[row] = bool(seat.shares)
        self._changes[row] = self.changes_of(seat) if changes is None else changes

    def remove(self, ons_id: str) -> None:
        """The seat back to undeclared."""
        row = self.projecting.baseline.row_of.get(ons_id)
        if row is None:
            return
        self._declared[row] = self._with_figures[row] = False
        self._won[row] = -1
        self._won_elsewhere.pop(row, None)
        self._changes[row] = 0.0

    def seats(self) -> dict[str, int]:
        """Each party's projected seats (parties on none left out); empty before any seat
        has figures."""
        projecting = self.projecting
        baseline = projecting.baseline
        figures = self._with_figures
        if not figures.any():
            return {}
        seats = self._membership @ figures.astype(np.float64)  # declared with figures, by group
        means = (self._membership @ self._changes) / np.maximum(seats, 1.0)[:, None]
        source = np.zeros(len(figures), dtype=np.int64)  # every seat: the national swing...
        if projecting.model == "regional":
            # ...its nation's once enough of it has declared, its region's over that.
            enough = projecting.min_region_seats
            source = np.where(seats[self._nation] >= enough, self._nation, source)
            source = np.where(seats[self._region] >= enough, self._region, source)
        undeclared = ~self._declared
        shares = np.maximum(baseline.notional[undeclared] + means[source[undeclared]], 0.0)
        parties = len(baseline.parties)
        won = self._won[self._won >= 0]
        totals = np.bincount(shares.argmax(axis=1), minlength=parties) + np.bincount(
            won, minlength=parties
        )
        projected = {party: int(totals[i]) for i, party in enumerate(baseline.parties) if totals[i]}
        for party in self._won_elsewhere.values():
            projected[party] = projected.get(party, 0) + 1
        return projected


@dataclass(frozen=True)
class Projecting:
    """How the night is projected: the baseline once per register, and the model's settings."""

    baseline: Baseline
    model: Model = "regional"
    min_region_seats: int = 8
    resamples: int = 40


def seat_projection(
    projecting: Projecting,
    declared: Iterable[DeclaredSeat],
    exit_poll: ExitPoll | None,
    as_of: dt.datetime | None,
) -> SeatProjection | None:
    """The projection as the state of the parties carries it, beside the exit poll."""
    projection = project(
        projecting.baseline,
        declared,
        model=projecting.model,
        min_region_seats=projecting.min_region_seats,
        resamples=projecting.resamples,
    )
    if projection is None:
        return None
    polled = {p.party: p.seats for p in exit_poll.projections} if exit_poll else {}
    return SeatProjection(
        model=projection.model,
        seats_declared=projection.seats_declared,
        seats_with_figures=projection.seats_with_figures,
        swing_from=projection.levels,
        as_of=as_of,
        parties=[
            ProjectedParty(
                party=p.party,
                seats=p.seats,
                low=p.low,
                high=p.high,
                declared=p.declared,
                exit_poll=polled.get(p.party),
            )
            for p in projection.parties
        ],
    )


__all__ = [
    "MODELS",
    "Baseline",
    "DeclaredSeat",
    "FloatArray",
    "Model",
    "PartyProjection",
    "Projecting",
    "Projection",
    "RunningProjection",
    "declared_seat",
    "project",
    "seat_projection",
]
