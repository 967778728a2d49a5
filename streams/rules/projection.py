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

import copy
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
LEVELS: tuple[Level, ...] = ("national", "nation", "region")

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


def _draws(seats: int, resamples: int, seed: int) -> FloatArray:
    """How many times each of `seats` declared seats is drawn in each resample (resamples x
    seats).

    Uniform draws counted per row: the same law as a multinomial, in one pass over the draws
    (numpy's multinomial draws category by category, the most of a 10,000-seat projection).
    """
    rng = np.random.default_rng(seed)
    count = max(resamples, 1)
    drawn = rng.integers(0, seats, size=(count, seats)) + seats * np.arange(count)[:, None]
    counts = np.bincount(drawn.ravel(), minlength=count * seats).reshape(count, seats)
    return counts.astype(np.float64)


def _swings(
    baseline: Baseline,
    model: Model,
    rows: IntArray,
    changes: FloatArray,
    weights: FloatArray,
    undeclared: IntArray,
    min_region_seats: int,
) -> tuple[FloatArray, IntArray]:
    """The swings each undeclared seat may take under each weighting of the declared seats:
    a table of national, nation and region means (weightings x groups x parties), and the row
    of it each seat takes (weightings x seats).

    A resample is a weighting: how many times each declared seat was drawn. Every mean is a
    matrix product over the seats of its group. The seats' swings are not spread out here:
    at 30,000 seats and 40 resamples that array alone was 110 MB, made again for every range.
    """
    national = (weights @ changes) / weights.sum(axis=1, keepdims=True)  # weightings x parties
    tables = [national[:, None, :]]
    source = np.zeros((len(weights), len(undeclared)), dtype=np.int64)  # row in the table
    if model == "regional":
        parties = changes.shape[1]
        offset = 1
        finer: tuple[tuple[IntArray, int], ...] = (
            (baseline.nation_of, baseline.nations),
            (baseline.region_of, baseline.regions),
        )
        for groups, count in finer:  # a region with enough seats overrides its nation
            of_declared = groups[rows]
            seats = np.zeros((len(weights), count))
            sums = np.zeros((len(weights), count, parties))
            for group in np.unique(of_declared):
                members = of_declared == group
                seats[:, group] = weights[:, members].sum(axis=1)
                sums[:, group, :] = weights[:, members] @ changes[members]
            tables.append(sums / np.maximum(seats, 1.0)[:, :, None])
            group_of = groups[undeclared]
            enough = seats[:, group_of] >= min_region_seats  # weightings x undeclared seats
            source = np.where(enough, offset + group_of[None, :], source)
            offset += count
    table: FloatArray = np.concatenate(tables, axis=1)  # weightings x groups x parties
    return table, source


# Weightings whose seats' shares are made at once: the shares of a few weightings of every
# seat stay within a few megabytes, where all of them at once took hundreds.
WEIGHTINGS_AT_ONCE = 4


def _winners(notional: FloatArray, table: FloatArray, source: IntArray) -> IntArray:
    """Each undeclared seat's winning column under each weighting (weightings x seats): the
    party with the highest notional share plus its swing, shares floored at zero."""
    winners = np.empty(source.shape, dtype=np.int64)
    for start in range(0, len(source), WEIGHTINGS_AT_ONCE):
        stop = min(start + WEIGHTINGS_AT_ONCE, len(source))
        at = np.arange(start, stop)[:, None]
        shares = notional[None, :, :] + table[at, source[start:stop]]
        np.maximum(shares, 0.0, out=shares)
        winners[start:stop] = shares.argmax(axis=2)
    return winners


# The resampling's seed: the same night projects the same, told twice or by two workers.
SEED = 20240704


def project(
    baseline: Baseline,
    declared: Iterable[DeclaredSeat],
    model: Model = "regional",
    min_region_seats: int = 8,
    resamples: int = 100,
    seed: int = SEED,
) -> Projection | None:
    """The final seats the declared results point to; None before any seat has figures.

    Deterministic for a given set of declared seats (a seeded resampling of them in the
    baseline's order): the same night told twice, or by two workers, projects the same.
    """
    running = RunningProjection(Projecting(baseline, model, min_region_seats, resamples))
    for seat in declared:
        running.put(seat)
    return running.projection(seed)


def declared_seat(result: SeatResult) -> DeclaredSeat:
    """A seat's latest result as the projection reads it: shares only once figures are in."""
    shares: dict[str, float] = {}
    if not result.figures_pending:
        for candidate in result.candidates:
            if candidate.share is not None:
                shares[candidate.party] = shares.get(candidate.party, 0.0) + candidate.share
    return DeclaredSeat(result.constituency_id, result.winning_party, shares)


class RunningProjection:
    """The projection kept seat by seat: each seat's share changes are made once, when it is
    put in, so projecting after a change costs array arithmetic over the seats, not a walk of
    every declared result. `seats` gives the central figures the exit-poll tracking reads after
    every step of the night; `projection` adds the range, for each state of the parties.
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
        # The central figures of the seats as they stand, kept until a seat is put in or taken
        # out: the exit-poll tracking and the snapshot both ask after the same step.
        self._central: tuple[IntArray, IntArray] | None = None

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
        self._central = None
        self._declared[row] = True
        column = baseline.column_of.get(seat.winning_party or "", -1)
        self._won[row] = column
        self._won_elsewhere.pop(row, None)
        if column < 0 and seat.winning_party is not None:
            self._won_elsewhere[row] = seat.winning_party
        self._with_figures[row] = bool(seat.shares)
        self._changes[row] = self.changes_of(seat) if changes is None else changes

    def copy(self) -> RunningProjection:
        """The seats as they stand now, kept apart from what is put in later: for a projection
        made on another thread."""
        # Everything but the settings and the seats' groups, which never change.
        fixed = (self.projecting, self._membership, self._nation, self._region)
        return copy.deepcopy(self, {id(kept): kept for kept in fixed})

    def remove(self, ons_id: str) -> None:
        """The seat back to undeclared."""
        row = self.projecting.baseline.row_of.get(ons_id)
        if row is None:
            return
        self._central = None
        self._declared[row] = self._with_figures[row] = False
        self._won[row] = -1
        self._won_elsewhere.pop(row, None)
        self._changes[row] = 0.0

    def projection(
        self, seed: int = SEED, range_from: Projection | None = None
    ) -> Projection | None:
        """The projection of the seats put in, with its range; None before any has figures.

        With `range_from` (an earlier projection of this night) only the central figures are
        made afresh, the range being that one's widened to include them and kept within what
        the seats still to declare allow: a fortieth of the cost.
        """
        projecting = self.projecting
        baseline = projecting.baseline
        rows = np.flatnonzero(self._with_figures)  # in the baseline's order, as drawn
        if not len(rows):
            return None
        undeclared = np.flatnonzero(~self._declared)
        parties = len(baseline.parties)
        central, levels = self._central_figures()
        won = np.bincount(self._won[self._won >= 0], minlength=parties)
        if range_from is None:
            weights = _draws(len(rows), projecting.resamples, seed)
            table, source = _swings(
                baseline,
                projecting.model,
                rows,
                self._changes[rows],
                weights,
                undeclared,
                projecting.min_region_seats,
            )
            winners = _winners(baseline.notional[undeclared], table, source)
            winners += parties * np.arange(len(weights))[:, None]
            totals = (
                np.bincount(winners.ravel(), minlength=len(weights) * parties).reshape(-1, parties)
                + won[None, :]
            )  # resamples x parties
            low = np.minimum(np.percentile(totals, 5, axis=0, method="lower"), central)
            high = np.maximum(np.percentile(totals, 95, axis=0, method="higher"), central)
        else:
            before = {p.party: (p.low, p.high) for p in range_from.parties}
            low, high = central.copy(), central.copy()
            for i, party in enumerate(baseline.parties):
                if party in before:
                    low[i] = max(won[i], min(central[i], before[party][0]))
                    high[i] = min(won[i] + len(undeclared), max(central[i], before[party][1]))
        projected = [
            PartyProjection(
                party=party,
                seats=int(central[i]),
                low=int(low[i]),
                high=int(high[i]),
                declared=int(won[i]),
            )
            for i, party in enumerate(baseline.parties)
            if central[i] or high[i] or won[i]
        ]
        others: dict[str, int] = {}  # declared wins of parties with no baseline to project
        for party in self._won_elsewhere.values():
            others[party] = others.get(party, 0) + 1
        projected += [PartyProjection(party, n, n, n, n) for party, n in others.items()]
        projected.sort(key=lambda p: (-p.seats, p.party))
        # Each level's seats, in the order the seats first use them (as the snapshot shows them).
        found, first = np.unique(levels, return_index=True)
        counts = np.bincount(levels, minlength=len(LEVELS))
        in_order = sorted(zip(first, found, strict=True))
        counted = {LEVELS[level]: int(counts[level]) for _, level in in_order}
        return Projection(
            model=projecting.model,
            seats_declared=int(self._declared.sum()),
            seats_with_figures=len(rows),
            parties=projected,
            levels=counted if projecting.model == "regional" else {"national": len(levels)},
        )

    def seats(self) -> dict[str, int]:
        """Each party's projected seats (parties on none left out); empty before any seat
        has figures."""
        if not self._with_figures.any():
            return {}
        totals, _ = self._central_figures()
        parties = self.projecting.baseline.parties
        projected = {party: int(totals[i]) for i, party in enumerate(parties) if totals[i]}
        for party in self._won_elsewhere.values():
            projected[party] = projected.get(party, 0) + 1
        return projected

    def _central_figures(self) -> tuple[IntArray, IntArray]:
        """Each party's central seats, declared wins included, and the level each undeclared
        seat's swing came from (an index in LEVELS, in the baseline's order)."""
        if self._central is not None:
            return self._central
        projecting = self.projecting
        baseline = projecting.baseline
        figures = self._with_figures
        seats = self._membership @ figures.astype(np.float64)  # declared with figures, by group
        means = (self._membership @ self._changes) / np.maximum(seats, 1.0)[:, None]
        source = np.zeros(len(figures), dtype=np.int64)  # every seat: the national swing...
        levels = np.zeros(len(figures), dtype=np.int64)
        if projecting.model == "regional":
            # ...its nation's once enough of it has declared, its region's over that.
            enough = projecting.min_region_seats
            for groups, level in ((self._nation, "nation"), (self._region, "region")):
                taken = seats[groups] >= enough
                source = np.where(taken, groups, source)
                levels[taken] = LEVELS.index(level)
        undeclared = ~self._declared
        shares = np.maximum(baseline.notional[undeclared] + means[source[undeclared]], 0.0)
        parties = len(baseline.parties)
        totals = np.bincount(shares.argmax(axis=1), minlength=parties) + np.bincount(
            self._won[self._won >= 0], minlength=parties
        )
        self._central = (totals, levels[undeclared])
        return self._central


@dataclass(frozen=True)
class Projecting:
    """How the night is projected: the baseline once per register, and the model's settings."""

    baseline: Baseline
    model: Model = "regional"
    min_region_seats: int = 8
    resamples: int = 40
    # Declaration time between fresh ranges in the state snapshots (0: every snapshot).
    range_every: dt.timedelta = dt.timedelta(0)

    def range_due(self, last: dt.datetime | None, now: dt.datetime | None) -> bool:
        """Whether a snapshot at declaration time `now` gets a fresh range, the last one
        having been made at `last` (None: none yet)."""
        if last is None or now is None:
            return True
        return now - last >= self.range_every

    def range_ready(self, asked: dt.datetime | None, now: dt.datetime | None) -> bool:
        """Whether a fresh range asked for at declaration time `asked`, and made apart, is
        taken in by a snapshot at `now`: halfway to the next, so the same run of changes gets
        the same range however long the making took."""
        if asked is None or now is None:
            return True
        return now - asked >= self.range_every / 2

    def project(self, declared: Iterable[DeclaredSeat]) -> Projection | None:
        return project(self.baseline, declared, self.model, self.min_region_seats, self.resamples)


def seat_projection(
    projection: Projection | None, exit_poll: ExitPoll | None, as_of: dt.datetime | None
) -> SeatProjection | None:
    """The projection as the state of the parties carries it, beside the exit poll."""
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
