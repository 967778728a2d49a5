"""The API's lists are in event time: declarations by `declared_at`, alerts by `occurred_at`.

Messages arrive in another order than the seats declared (four partitions read in batches,
a backlog, a redelivery), so the outbox and change-log sequences are arrival order; the
lists graphics show must not be.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.results import SeatResult
from streams.rules.tally import seat_result
from streams.store.keys import election_namespace
from streams.store.outbox import Outbox, Output, QueuedOutput
from streams.web.api import alerts_by_time, latest_declarations
from streams.web.live_page import STATIC_DIR
from tests.unit.tally_fixtures import night
from tests.unit.test_live_page import app, get

BST = dt.timezone(dt.timedelta(hours=1))
ELECTION_ID = "parl.2024-07-04"


@cache
def seats_as_they_arrived() -> list[SeatResult]:
    """The 2024 night's 650 results with sequences in a shuffled arrival order."""
    register = night().register
    declarations = list(night().declarations)
    random.Random(15).shuffle(declarations)
    return [
        seat_result(d, register.constituencies[d.constituency_id], sequence)
        for sequence, d in enumerate(declarations, start=1)
    ]


def by_declaration_time(seats: list[SeatResult]) -> list[str]:
    """Newest first, worked out independently: the night's order (the instant, then name,
    then id), reversed."""
    night_order = sorted(
        seats, key=lambda s: (s.declared_at.timestamp(), s.constituency_name, s.constituency_id)
    )
    return [s.constituency_id for s in reversed(night_order)]


def seat(ons_id: str, name: str, declared_at: dt.datetime, sequence: int) -> SeatResult:
    return SeatResult(
        election_id=ELECTION_ID,
        ballot_id=f"parl.{ons_id.lower()}.2024-07-04",
        constituency_id=ons_id,
        constituency_name=name,
        kind="result",
        revision=1,
        declared_at=declared_at,
        sequence=sequence,
        figures_pending=False,
        recount=False,
        rehearsal=False,
    )


def alert(alert_id: str, kind: AlertType, occurred_at: dt.datetime) -> Alert:
    return Alert(
        alert_id=alert_id,
        election_id=ELECTION_ID,
        rehearsal=False,
        type=kind,
        priority=AlertPriority.HIGH,
        headline=alert_id,
        body="",
        occurred_at=occurred_at,
    )


def alert_output(item: Alert) -> Output:
    return Output(item.alert_id, "alerts", item.alert_id, item.model_dump_json().encode())


def result_output(ons_id: str) -> Output:
    return Output(f"result:{ons_id}:1", "results", ons_id, b"{}")


EXIT_POLL = alert("exit-poll", AlertType.EXIT_POLL, dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST))
FIRST = alert("first", AlertType.FIRST_DECLARATION, dt.datetime(2024, 7, 4, 23, 17, tzinfo=BST))
# Two alerts of one moment, one of them given in UTC: the same instant as 01:30 BST.
GAIN = alert("gain", AlertType.SEAT_GAIN, dt.datetime(2024, 7, 5, 0, 30, tzinfo=dt.UTC))
SHOCK = alert("shock", AlertType.SHOCK_GAIN, dt.datetime(2024, 7, 5, 1, 30, tzinfo=BST))
MAJORITY = alert("majority", AlertType.MAJORITY_WON, dt.datetime(2024, 7, 5, 5, 3, tzinfo=BST))


# ---- the orders themselves ----


def test_declarations_are_newest_first_by_declaration_time_not_arrival() -> None:
    seats = seats_as_they_arrived()
    ordered = latest_declarations(seats, 650)
    assert [s.constituency_id for s in ordered] == by_declaration_time(seats)
    assert ordered[0].constituency_name == "Inverness, Skye and West Ross-shire"
    assert ordered[-1].constituency_name == "Houghton and Sunderland South"
    arrival = sorted(seats, key=lambda s: s.sequence, reverse=True)
    assert [s.constituency_id for s in ordered] != [s.constituency_id for s in arrival]
    assert [s.constituency_id for s in latest_declarations(seats, 20)] == (
        by_declaration_time(seats)[:20]
    )


def test_seats_declared_at_one_moment_are_in_reverse_name_order_then_id() -> None:
    # The night takes seats of one moment by name, then id (the replay's order, and how the
    # first and last declarations are told); newest first, the later of them comes first.
    at = dt.datetime(2024, 7, 5, 2, 0, tzinfo=BST)
    later = at + dt.timedelta(minutes=1)
    seats = [
        seat("E14000003", "Bury North", at, 1),
        seat("E14000002", "Aldershot", at, 2),
        seat("E14000009", "Zeta", later, 3),
        seat("E14000001", "Aldershot", at, 4),  # same name: the id decides
        # The same instant as `at`, written in UTC.
        seat("E14000005", "Ashford", at.astimezone(dt.UTC), 5),
        seat("E14000004", "Alyn and Deeside", at - dt.timedelta(minutes=1), 6),
    ]
    assert [s.constituency_id for s in latest_declarations(seats, 10)] == [
        "E14000009",
        "E14000003",
        "E14000005",
        "E14000002",
        "E14000001",
        "E14000004",
    ]


def test_alerts_are_oldest_first_by_occurred_at_then_sequence() -> None:
    # Published in arrival order: the first declaration before the exit poll, the shock
    # before the gain of the same moment, and results between them.
    queued = [
        QueuedOutput(1, result_output("E14001290")),
        QueuedOutput(2, alert_output(FIRST)),
        QueuedOutput(3, alert_output(MAJORITY)),
        QueuedOutput(4, alert_output(EXIT_POLL)),
        QueuedOutput(5, alert_output(SHOCK)),
        QueuedOutput(6, result_output("E14001000")),
        QueuedOutput(7, alert_output(GAIN)),
    ]
    alerts = alerts_by_time(queued)
    assert [(a["alert_id"], a["sequence"]) for a in alerts] == [
        ("exit-poll", 4),
        ("first", 2),
        ("shock", 5),
        ("gain", 7),
        ("majority", 3),
    ]


# ---- through the views, as a client sees them ----


class FakeStore:
    def __init__(self, seats: list[SeatResult]) -> None:
        self._seats = {s.constituency_id: s for s in seats}

    async def seats(self) -> dict[str, SeatResult]:
        return dict(self._seats)


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box = Outbox(fakeredis.FakeAsyncRedis(), election_namespace("test:", ELECTION_ID))
    monkeypatch.setattr(app.context, "outbox", box)
    return box


async def test_the_declarations_view_answers_in_declaration_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seats = seats_as_they_arrived()
    monkeypatch.setattr(app.context, "store", FakeStore(seats))
    every = json.loads((await get("/api/declarations?limit=650")).body)
    assert [s["constituency_id"] for s in every] == by_declaration_time(seats)
    latest = json.loads((await get("/api/declarations")).body)
    assert [s["constituency_id"] for s in latest] == by_declaration_time(seats)[:20]


async def test_the_alerts_view_answers_in_occurred_at_order(outbox: Outbox) -> None:
    await outbox.announce_many(
        [
            (1, [result_output("E14001290"), alert_output(FIRST)]),
            (2, [alert_output(MAJORITY)]),
            (3, [alert_output(EXIT_POLL), alert_output(SHOCK)]),
            (4, [result_output("E14001000"), alert_output(GAIN)]),
        ]
    )
    alerts = json.loads((await get("/api/alerts")).body)
    assert [(a["alert_id"], a["sequence"]) for a in alerts] == [
        ("exit-poll", 4),
        ("first", 2),
        ("shock", 5),
        ("gain", 7),
        ("majority", 3),
    ]
    # `after` is an outbox position: what was queued after it, still in time order.
    since = json.loads((await get("/api/alerts?after=3")).body)
    assert [a["alert_id"] for a in since] == ["exit-poll", "shock", "gain"]
    assert max(a["sequence"] for a in since) == 7
    assert json.loads((await get("/api/alerts?after=7")).body) == []


# ---- the page sorts as the API does ----

NODE_ORDER = r"""
const h = require(process.argv[2]);
const input = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));
console.log(JSON.stringify({
  seats: h.latestSeats(input.seats, input.seats.length).map((s) => s.constituency_id),
  ticker: h.latestSeats(new Map(input.seats.map((s) => [s.constituency_id, s])).values(), 10)
    .map((s) => s.constituency_id),
  alerts: h.newestAlerts(input.alerts, input.alerts.length).map((a) => a.alert_id),
  banners: h.newestAlerts(input.alerts, 3).map((a) => a.alert_id),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_the_page_orders_as_the_api_does(tmp_path: Path) -> None:
    seats = seats_as_they_arrived()
    ties = [
        seat("E14000003", "Bury North", dt.datetime(2024, 7, 8, 2, 0, tzinfo=BST), 651),
        seat("E14000002", "Aldershot", dt.datetime(2024, 7, 8, 1, 0, tzinfo=dt.UTC), 652),
        seat("E14000001", "Aldershot", dt.datetime(2024, 7, 8, 2, 0, tzinfo=BST), 653),
    ]
    seats = [*seats, *ties]
    queued = [
        QueuedOutput(n, alert_output(a))
        for n, a in enumerate([FIRST, MAJORITY, EXIT_POLL, SHOCK, GAIN], start=1)
    ]
    api_alerts = alerts_by_time(queued)
    data: dict[str, Any] = {
        # Shuffled, as seats land in the page's map in whatever order events came.
        "seats": [s.model_dump(mode="json") for s in random.Random(7).sample(seats, len(seats))],
        "alerts": list(reversed(api_alerts)),
    }
    (tmp_path / "input.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "order.js").write_text(NODE_ORDER, encoding="utf-8")
    out = subprocess.run(
        [
            "node",
            str(tmp_path / "order.js"),
            str(STATIC_DIR / "app.js"),
            str(tmp_path / "input.json"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    page = json.loads(out.stdout)
    api_seats = [s.constituency_id for s in latest_declarations(seats, len(seats))]
    assert page["seats"] == api_seats == by_declaration_time(seats)
    assert page["ticker"][:3] == ["E14000003", "E14000002", "E14000001"]
    assert page["ticker"] == api_seats[:10]
    # Newest first on the page: the API's list reversed, the exit poll last of all.
    assert page["alerts"] == [a["alert_id"] for a in reversed(api_alerts)]
    assert page["alerts"][-2:] == ["first", "exit-poll"]
    assert page["banners"] == ["majority", "gain", "shock"]
