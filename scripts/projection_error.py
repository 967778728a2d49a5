"""How wrong the live projection was on the 2024 night after 50, 100, 200 and 400 declarations."""

# The declarations are taken in the night's own order (declaration time), as the replay sends
# them. The error is the number of seats the projection put in the wrong party's column
# (half the sum of the absolute differences per party), beside the exit poll's on the same
# measure. Nothing here is tuned to 2024: the model's only baseline is the notional 2019
# result shipped in streams/data/ge2024.

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from scripts.night_builder import build_night
from streams.rules.alerts.story import NightStory, StoryStep
from streams.rules.alerts.tracking import Tracking
from streams.rules.event_time import event_key
from streams.rules.projection import MODELS, Baseline, Projecting, declared_seat, project
from streams.rules.tally import seat_contribution, seat_result
from streams.settings import DEFAULT_DATA_DIR

CHECKPOINTS = (50, 100, 200, 400)
MAJOR = ("Lab", "Con", "LD", "SNP", "RUK", "Green")


def seats_wrong(projected: Mapping[str, int], final: Mapping[str, int]) -> int:
    """Seats in the wrong party's column: half the parties' absolute differences."""
    parties = set(projected) | set(final)
    return sum(abs(projected.get(p, 0) - final.get(p, 0)) for p in parties) // 2


def table(data_dir: Path, checkpoints: Sequence[int], resamples: int) -> list[str]:
    night = build_night(data_dir)
    register = night.register
    baseline = Baseline.of(register)
    results = [
        declared_seat(seat_result(d, register.constituencies[d.constituency_id], n))
        for n, d in enumerate(night.declarations, start=1)
    ]
    final = Counter(seat.winning_party for seat in results if seat.winning_party)
    exit_poll = {p.party: p.seats for p in night.exit_poll.projections}
    header = f"{'declared':>8}  {'model':<9}" + "".join(f"{p:>15}" for p in MAJOR) + "  wrong"
    lines = [header]
    for n in checkpoints:
        for model in MODELS:
            projection = project(baseline, results[:n], model=model, resamples=resamples)
            if projection is None:
                continue
            seats = {p.party: p.seats for p in projection.parties}
            ranges = {p.party: f"{p.seats} ({p.low}-{p.high})" for p in projection.parties}
            cells = "".join(f"{ranges.get(p, '0'):>15}" for p in MAJOR)
            lines.append(f"{n:>8}  {model:<9}{cells}  {seats_wrong(seats, final):>5}")
    exit_cells = "".join(f"{exit_poll.get(p, 0):>15}" for p in MAJOR)
    # The exit poll names some parties and lumps the rest as Others: compare like with like.
    final_as_polled = Counter(
        {p: n for p, n in final.items() if p in exit_poll}
        | {"Others": sum(n for p, n in final.items() if p not in exit_poll)}
    )
    wrong = seats_wrong(exit_poll, final_as_polled)
    lines.append(f"{'exit':>8}  {'poll':<9}{exit_cells}  {wrong:>5}")
    final_cells = "".join(f"{final.get(p, 0):>15}" for p in MAJOR)
    lines.append(f"{650:>8}  {'result':<9}{final_cells}  {0:>5}")
    return lines


def cost_ms(data_dir: Path, declared: int, resamples: int, repeats: int = 20) -> float:
    """Mean time of one projection from the first `declared` seats (the publisher's cost per
    snapshot, less turning each result into shares, which it keeps per seat)."""
    night = build_night(data_dir)
    register = night.register
    baseline = Baseline.of(register)
    seats = [
        declared_seat(seat_result(d, register.constituencies[d.constituency_id], n))
        for n, d in enumerate(night.declarations[:declared], start=1)
    ]
    began = time.perf_counter()
    for _ in range(repeats):
        project(baseline, seats, resamples=resamples)
    return (time.perf_counter() - began) / repeats * 1000


def walk_ms(data_dir: Path, tracking: bool, repeats: int = 3) -> float:
    """The fastest of `repeats` walks of the night's story, in declaration order, as the
    publisher walks it: with the exit-poll tracking (the default settings) or without."""
    night = build_night(data_dir)
    register = night.register
    steps = []
    for n, declaration in enumerate(night.declarations, start=1):
        ref = register.constituencies[declaration.constituency_id]
        key = event_key(declaration.declared_at, ref.name, ref.ons_id, declaration.revision)
        seat = declared_seat(seat_result(declaration, ref, n))
        steps.append(StoryStep.of_change(key, n, seat_contribution(declaration, ref), seat=seat))
    rule = Tracking(Projecting(Baseline.of(register))) if tracking else None
    best = float("inf")
    for _ in range(repeats):
        story = NightStory(register, tracking=rule)
        story.set_exit_poll(night.exit_poll)
        began = time.perf_counter()
        for step in steps:
            story.add(step)
        best = min(best, time.perf_counter() - began)
    return best * 1000


def point_projections_ms(data_dir: Path) -> float:
    """The night projected after every declaration by `project` without resamples: what
    tracking would cost built on it."""
    night = build_night(data_dir)
    register = night.register
    baseline = Baseline.of(register)
    seats = [
        declared_seat(seat_result(d, register.constituencies[d.constituency_id], n))
        for n, d in enumerate(night.declarations, start=1)
    ]
    began = time.perf_counter()
    for n in range(1, len(seats) + 1):
        project(baseline, seats[:n], resamples=0)
    return (time.perf_counter() - began) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--resamples", type=int, default=40)
    parser.add_argument(
        "--at", type=int, nargs="+", default=list(CHECKPOINTS), help="declarations counted"
    )
    args = parser.parse_args(argv)
    print("\n".join(table(args.data_dir, args.at, args.resamples)))
    for resamples in sorted({args.resamples, 100}):
        ms = cost_ms(args.data_dir, 300, resamples)
        print(
            f"one regional projection from 300 declared seats, {resamples} resamples: {ms:.1f} ms"
        )
    plain, tracked = walk_ms(args.data_dir, tracking=False), walk_ms(args.data_dir, tracking=True)
    print(
        f"the night's story walked once ({len(build_night(args.data_dir).declarations)} "
        f"steps): {plain:.0f} ms, {tracked:.0f} ms with exit-poll tracking"
    )
    print(
        f"project(resamples=0) after every declaration instead: "
        f"{point_projections_ms(args.data_dir):.0f} ms"
    )


if __name__ == "__main__":
    main()
