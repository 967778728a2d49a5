"""Replay the 2024 night through the alert detectors and print the alerts by type, with counts.

The alerts topic's are `alerts_of_the_night`; the exit-poll tracking's, for the newsroom
topic by default, are `tracking_alerts_of_the_night`, listed apart.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.results import SeatResult
from scripts.night_builder import build_night
from streams.rules.alerts import AlertPolicy, AppliedChange, detect_change, detect_exit_poll
from streams.rules.alerts.story import NightStory, StoryStep
from streams.rules.alerts.tracking import BACK_IN_LINE, TRACKING
from streams.rules.event_time import event_key
from streams.rules.projection import declared_seat
from streams.rules.tally import Contribution, seat_contribution, seat_result, state_of_parties
from streams.rules.watchlist import check_against_register, load_watchlist
from streams.settings import Settings, get_settings


def alerts_of_the_night(data_dir: Path, watchlist_file: Path, policy: AlertPolicy) -> list[Alert]:
    """The clean night through the same tally rules and detectors as the worker, in memory."""
    night = build_night(data_dir)
    register = night.register
    watchlist = load_watchlist(watchlist_file)
    problems = check_against_register(watchlist, register)
    if problems:
        raise SystemExit("watchlist does not match the register:\n" + "\n".join(problems))
    alerts = detect_exit_poll(night.exit_poll, register, policy)
    totals: Contribution = {}
    seats: dict[str, SeatResult] = {}
    state = state_of_parties(totals, register, 0, None, None)
    for sequence, declaration in enumerate(night.declarations, start=1):
        ref = register.constituency(declaration.constituency_id)
        assert ref is not None  # the night builder matched every seat to the register
        # One result per seat on a clean night: nothing to subtract before adding.
        for key, value in seat_contribution(declaration, ref).items():
            totals[key] = totals.get(key, 0) + value
        result = seat_result(declaration, ref, sequence)
        after = state_of_parties(
            totals, register, sequence, result.declared_at, result.constituency_id
        )
        change = AppliedChange(
            result=result,
            previous=seats.get(result.constituency_id),
            state_before=state,
            state_after=after,
        )
        alerts += detect_change(change, register, watchlist, policy)
        seats[result.constituency_id], state = result, after
    return alerts


def tracking_alerts_of_the_night(settings: Settings) -> list[Alert]:
    """The exit-poll tracking's alerts of the clean night: its story walked in declaration
    order, as the publisher walks it, each moment told as it passes."""
    night = build_night(settings.data_dir)
    register = night.register
    tracking = settings.exit_poll_tracking(settings.projecting(register))
    if tracking is None:
        return []
    policy = settings.alert_policy()
    story = NightStory(register, tracking=tracking)
    story.set_exit_poll(night.exit_poll)
    alerts: list[Alert] = []
    for sequence, declaration in enumerate(night.declarations, start=1):
        ref = register.constituency(declaration.constituency_id)
        assert ref is not None
        result = seat_result(declaration, ref, sequence)
        key = event_key(declaration.declared_at, ref.name, ref.ons_id, declaration.revision)
        contribution = seat_contribution(declaration, ref)
        story.add(StoryStep.of_change(key, sequence, contribution, seat=declared_seat(result)))
        told = story.alerts(story.tell(None), {sequence: result}, policy)
        alerts += [a for a in told if a.type in (TRACKING, BACK_IN_LINE)]
    return alerts


def _line(alert: Alert) -> str:
    when = alert.occurred_at.strftime("%a %H:%M")
    return f"  {when}  [{alert.priority}] {alert.headline}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--all", action="store_true", help="print every alert's headline")
    args = parser.parse_args(argv)
    settings = get_settings()
    policy = settings.alert_policy()
    alerts = alerts_of_the_night(settings.data_dir, settings.watchlist_path(), policy)

    by_type = Counter(a.type for a in alerts)
    print(f"{len(alerts)} alerts, {len({a.alert_id for a in alerts})} distinct ids\n")
    print("By type:")
    for alert_type in AlertType:
        if by_type[alert_type]:
            priority = policy.priority(alert_type)
            print(f"  {alert_type.value:<38} {by_type[alert_type]:>4}  ({priority})")
    by_priority = Counter(a.priority for a in alerts)
    print("\nBy priority: " + ", ".join(f"{p} {by_priority[p]}" for p in AlertPriority))

    shown = [a for a in alerts if args.all or a.type is not AlertType.SEAT_GAIN]
    if not args.all:
        shown = [
            a
            for a in shown
            if a.priority is AlertPriority.FLASH or a.type is not AlertType.SHOCK_GAIN
        ]
    print("\nThe night" + ("" if args.all else " (without seat and shock gains)") + ":")
    for alert in shown:
        print(_line(alert))

    tracked = tracking_alerts_of_the_night(settings)
    topic = "alerts" if settings.exit_poll_tracking_audience == "public" else "newsroom"
    print(f"\nExit-poll tracking, {len(tracked)} alerts (the {topic} topic):")
    for alert in tracked:
        seats = alert.figures["seats_with_figures"]
        print(f"{_line(alert)}  ({seats} seats declared)")


if __name__ == "__main__":
    main()
