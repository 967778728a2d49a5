"""The story of the night as the alerts and state topics tell it (issue 15).

The contract the publisher follows: an alert whose `supersedes` names earlier alert ids
replaces them (an `amended` alert with `replaces_type` the original type, or the same fact
told again after a correction), and a `retracted` alert withdraws them. What an app shows
at the end is the *effective* alerts: every alert no later one supersedes, retractions
left out. A moment of the night (first declaration, majority won, ...) is the one effective
alert of that type, or the one effective amendment of an alert of that type.

Topics are read in outbox order (the `outbox-seq` header every output carries), which is
the order the publisher queued them whatever the topic's partitions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from scripts.night_builder import Night
from tests.integration.pipeline import Pipeline, assert_published_once

Alert = dict[str, Any]

LONDON = ZoneInfo("Europe/London")
OUTBOX_SEQ_HEADER = "outbox-seq"  # streams/store/outbox.py's header, the published contract
REVISING_TYPES = frozenset({"amended", "retracted"})

# The 2024 night's moments, as the returning officers declared them (UK time).
HOUGHTON = "E14001295"  # Houghton and Sunderland South, the first seat declared
FIRST_DECLARED_AT = dt.datetime(2024, 7, 4, 23, 17, tzinfo=LONDON)
PRESTON = "E14001433"  # Preston, Labour's 326th seat
MAJORITY_AT = dt.datetime(2024, 7, 5, 5, 3, tzinfo=LONDON)
INVERNESS = "S14000094"  # Inverness, Skye and West Ross-shire, declared on Saturday
LAST_DECLARED_ON = dt.date(2024, 7, 6)


def in_outbox_order(messages: list[tuple[bytes | None, bytes, dict[str, bytes]]]) -> list[Any]:
    """The JSON values of a topic's messages, ordered by their outbox sequence."""
    keyed: list[tuple[int, Any]] = []
    for _, value, headers in messages:
        assert OUTBOX_SEQ_HEADER in headers, f"a message without {OUTBOX_SEQ_HEADER}: {value!r}"
        keyed.append((int(headers[OUTBOX_SEQ_HEADER]), orjson.loads(value)))
    seqs = [seq for seq, _ in keyed]
    assert len(set(seqs)) == len(seqs), "two messages with the same outbox sequence"
    return [value for _, value in sorted(keyed, key=lambda pair: pair[0])]


def alerts_in_order(pipeline: Pipeline) -> list[Alert]:
    return in_outbox_order(pipeline.read("alerts"))


def effective_alerts(alerts: list[Alert]) -> list[Alert]:
    """The alerts no later alert supersedes, without the retractions (in the given order,
    which must be topic order: an alert that supersedes one published after it fails)."""
    position = {alert["alert_id"]: i for i, alert in enumerate(alerts)}
    superseded: set[str] = set()
    for i, alert in enumerate(alerts):
        for old in alert.get("supersedes") or []:
            # `supersedes` may also name ids that were never published; only order the rest.
            assert position.get(old, -1) < i, f"{alert['alert_id']} supersedes {old}, sent later"
            superseded.add(old)
    return [a for a in alerts if a["alert_id"] not in superseded and a["type"] != "retracted"]


def of_kind(alert: Alert, kind: str) -> bool:
    """An alert of that type, or an amendment or retraction of one."""
    return alert["type"] == kind or (
        alert["type"] in REVISING_TYPES and alert.get("replaces_type") == kind
    )


def describe(alerts: list[Alert]) -> list[str]:
    return [
        f"{a['type']}({a.get('replaces_type') or ''}) {a.get('constituency_id')} "
        f"{a.get('constituency_name')} at {a.get('occurred_at')} id={a['alert_id']} "
        f"supersedes={a.get('supersedes') or []}"
        for a in alerts
    ]


def moment(alerts: list[Alert], kind: str) -> Alert:
    """The one effective alert of `kind` (or the one effective amendment of it)."""
    found = [a for a in effective_alerts(alerts) if of_kind(a, kind)]
    assert len(found) == 1, (
        f"{len(found)} effective {kind} alerts; all of that kind, in topic order: "
        f"{describe([a for a in alerts if of_kind(a, kind)])}"
    )
    return found[0]


def occurred(alert: Alert) -> dt.datetime:
    """When the alert says its moment happened, in UK time (it must carry its offset)."""
    at = dt.datetime.fromisoformat(alert["occurred_at"])
    assert at.tzinfo is not None, f"occurred_at without a timezone: {alert['occurred_at']}"
    return at.astimezone(LONDON)


def declared_at(night: Night, constituency_id: str) -> dt.datetime:
    """A seat's declaration time as the reference feed has it."""
    return next(d.declared_at for d in night.declarations if d.constituency_id == constituency_id)


def where(alert: Alert) -> tuple[str | None, dt.datetime]:
    return alert.get("constituency_id"), occurred(alert)


def assert_no_revisions(alerts: list[Alert]) -> None:
    """A clean feed in time order, at any speed, amends and retracts nothing."""
    revising = [a for a in alerts if a["type"] in REVISING_TYPES]
    assert not revising, f"amended or retracted on a clean night: {describe(revising)}"


def assert_final_state(pipeline: Pipeline, night: Night) -> None:
    """The last state-of-the-parties snapshot: all 650 seats, as of Inverness's declaration."""
    snapshots = in_outbox_order(pipeline.read("state"))
    assert snapshots, "no state-of-the-parties snapshot on the state topic"
    final = snapshots[-1]
    assert final["seats_declared"] == 650
    inverness = declared_at(night, INVERNESS)
    assert inverness.astimezone(LONDON).date() == LAST_DECLARED_ON  # the data's own fact
    assert final["as_of"] is not None, "the final state has no as_of"
    as_of = dt.datetime.fromisoformat(final["as_of"])
    assert as_of == inverness, (
        f"final state as of {as_of.astimezone(LONDON)}, not Inverness's {inverness}"
    )


def assert_the_story(pipeline: Pipeline, night: Night, clean: bool) -> list[Alert]:
    """The night's moments as issue 15 has them, read from the topics; `clean`: the feed was
    the clean night in time order (however fast or late it was read), so nothing may be
    amended or retracted. Returns the alerts in topic order."""
    assert_published_once(pipeline)
    alerts = alerts_in_order(pipeline)
    if clean:
        assert_no_revisions(alerts)

    first = moment(alerts, "first_declaration")
    assert where(first) == (HOUGHTON, FIRST_DECLARED_AT), (
        f"first declaration: {first.get('constituency_name')} at {occurred(first)}"
    )
    majority = moment(alerts, "majority_won")
    assert majority.get("party") == "Lab", f"majority won by {majority.get('party')}"
    assert where(majority) == (PRESTON, MAJORITY_AT), (
        f"majority delivered by {majority.get('constituency_name')} at {occurred(majority)}"
    )
    last = moment(alerts, "last_declaration")
    assert last.get("constituency_id") == INVERNESS, (
        f"last declaration: {last.get('constituency_name')} at {occurred(last)}"
    )
    assert occurred(last).date() == LAST_DECLARED_ON
    assert occurred(last) == declared_at(night, INVERNESS)

    # The exit poll is told before the first declaration, under any of the alerts that
    # told the first declaration.
    exit_poll = moment(alerts, "exit_poll")
    position = {a["alert_id"]: i for i, a in enumerate(alerts)}
    told_first = [position[a["alert_id"]] for a in alerts if of_kind(a, "first_declaration")]
    assert position[exit_poll["alert_id"]] < min(told_first), (
        "the exit poll alert was published after the first declaration's: "
        f"{describe(alerts[: max(told_first) + 1])}"
    )

    assert_final_state(pipeline, night)
    return alerts
