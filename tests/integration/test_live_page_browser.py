"""The live results page in a real browser: against a fake API, and against a real worker."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request
from pydantic import BaseModel

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.results import (
    CandidateResult,
    PartyTally,
    ProjectedParty,
    SeatProjection,
    SeatResult,
    StateOfParties,
)
from scripts.chaos import Outgoing
from scripts.replay import build_outgoing
from streams.pipeline.app import create_app
from streams.rules.reference import Register, load_register
from streams.settings import Settings
from streams.web import live_page
from tests.integration.browser import ChromiumMissing, chromium
from tests.integration.pipeline import Pipeline, new_pipeline
from tests.unit.ge2024 import OFFICIAL_SEATS

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "streams" / "data" / "ge2024"
ARTIFACTS = ROOT / "artifacts"
ELECTION_ID = "parl.2024-07-04"
BST = dt.timezone(dt.timedelta(hours=1))
UK = ZoneInfo("Europe/London")
VIEWPORT = {"width": 1920, "height": 1080}  # the newsroom wall screens
PUSHED_SEATS = 420  # enough to fill most of the map, as at about 3am
EVIL_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
# The real-worker test squeezes the night into about this long: slow enough to watch the
# page fill in, fast enough for CI.
NIGHT_S = 45.0
QUIET_GAP = dt.timedelta(minutes=10)  # longer lulls on the night (e.g. 10:00 to 17:00) shrink
SAMPLE_EVERY_S = 2.0


# ---- fixtures built from the real 2024 results ----


def _candidate_rows() -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (DATA_DIR / "HoC-GE2024-results-by-candidate.csv").open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            rows[row["ONS ID"]].append(row)
    return rows


def _read(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def real_seat_results(register: Register) -> list[SeatResult]:
    """All 650 seats as the worker would publish them, in the order the Library recorded them."""
    candidates = _candidate_rows()
    seats = {row["ONS ID"]: row for row in _read("HoC-GE2024-results-by-constituency.csv")}
    recorded = {
        row["ons_id"]: dt.datetime.strptime(row["time_recorded"], "%m/%d/%y %H:%M").replace(
            tzinfo=BST
        )
        for row in _read("HoC-GE2024-winning-members-time-recorded.csv")
    }
    order = sorted(seats, key=lambda ons: (recorded[ons], seats[ons]["Constituency name"]))
    results = []
    for sequence, ons_id in enumerate(order, start=1):
        row = seats[ons_id]
        ref = register.constituencies[ons_id]
        ranked = sorted(candidates[ons_id], key=lambda c: -int(c["Votes"]))
        standing = [
            CandidateResult(
                person_id=int(c["DC Person ID"]),
                name=f"{c['Candidate first name']} {c['Candidate surname']}",
                party=c["Party abbreviation"],
                party_name=c["Party name"],
                votes=int(c["Votes"]),
                share=float(c["Share"]),
                share_change=float(c["Change"]) if c["Change"] else None,
                elected=index == 0,
            )
            for index, c in enumerate(ranked)
        ]
        electorate, valid = int(row["Electorate"]), int(row["Valid votes"])
        invalid = int(row["Invalid votes"])
        gain = " gain from " in row["Result"]
        results.append(
            SeatResult(
                election_id=ELECTION_ID,
                ballot_id=ref.ballot_id,
                constituency_id=ons_id,
                constituency_name=row["Constituency name"],
                kind="result",
                revision=1,
                declared_at=recorded[ons_id],
                sequence=sequence,
                figures_pending=False,
                recount=False,
                winning_party=standing[0].party,
                winner=standing[0],
                previous_party=ref.notional_2019_winner,
                gain=gain,
                result_label=row["Result"],
                electorate=electorate,
                valid_votes=valid,
                rejected_ballots=invalid,
                turnout=(valid + invalid) / electorate,
                majority=int(row["Majority"]),
                majority_share=int(row["Majority"]) / valid,
                candidates=standing,
                rehearsal=False,
            )
        )
    return results


def state_after(declared: list[SeatResult]) -> StateOfParties:
    """The state of the parties once these seats have declared, tallied as the worker does."""
    seats: dict[str, int] = defaultdict(int)
    gains: dict[str, int] = defaultdict(int)
    losses: dict[str, int] = defaultdict(int)
    votes: dict[str, int] = defaultdict(int)
    notional: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    for seat in declared:
        assert seat.winning_party is not None
        seats[seat.winning_party] += 1
        if seat.gain and seat.previous_party:
            gains[seat.winning_party] += 1
            losses[seat.previous_party] += 1
        for c in seat.candidates:
            names.setdefault(c.party, c.party_name)
            votes[c.party] += c.votes or 0
            if c.share is not None and c.share_change is not None:
                notional[c.party] += (c.share - c.share_change) * (seat.valid_votes or 0)
    total_votes = sum(votes.values())
    parties = [
        PartyTally(
            party=party,
            name=names.get(party, party),
            seats=seats[party],
            gains=gains[party],
            losses=losses[party],
            seats_change=gains[party] - losses[party],
            votes=votes[party],
            share=votes[party] / total_votes if total_votes else 0.0,
            share_change=(votes[party] - notional[party]) / total_votes if total_votes else None,
        )
        for party in sorted(set(votes) | set(seats))
    ]
    largest = max(parties, key=lambda p: p.seats, default=None)
    electorate = sum(seat.electorate or 0 for seat in declared)
    turnout_votes = sum((seat.valid_votes or 0) + (seat.rejected_ballots or 0) for seat in declared)
    return StateOfParties(
        election_id=ELECTION_ID,
        rehearsal=False,
        sequence=len(declared),
        as_of=declared[-1].declared_at if declared else None,
        seats_declared=len(declared),
        seats_with_figures=len(declared),
        total_votes=total_votes,
        electorate_declared=electorate,
        turnout=turnout_votes / electorate if electorate else None,
        largest_party=largest.party if largest and largest.seats else None,
        majority_party=largest.party if largest and largest.seats >= 326 else None,
        last_constituency_id=declared[-1].constituency_id if declared else None,
        parties=[p for p in parties if p.seats or p.votes],
    )


def alert_for(seat: SeatResult, kind: AlertType, priority: AlertPriority, headline: str) -> Alert:
    return Alert(
        alert_id=f"{kind.value}:{seat.constituency_id}:{seat.revision}",
        election_id=ELECTION_ID,
        rehearsal=False,
        type=kind,
        priority=priority,
        headline=headline,
        body=f"{seat.result_label}: majority {seat.majority:,}.",
        occurred_at=seat.declared_at,
        constituency_id=seat.constituency_id,
        constituency_name=seat.constituency_name,
        party=seat.winning_party,
        sequence=seat.sequence,
    )


@pytest.fixture(scope="module")
def results() -> list[SeatResult]:
    return real_seat_results(load_register(DATA_DIR))


# ---- a fake of the API contract that streams/web/api.py implements ----


class FakeLiveApi:
    """Snapshots at /api/state, /api/seats, /api/alerts and an SSE stream the test pushes into.

    The page and its files are served by the real `streams.web.live_page` views, so what the
    browser loads is exactly what the worker serves.
    """

    def __init__(self) -> None:
        self.state = StateOfParties(election_id=ELECTION_ID, rehearsal=False, sequence=0)
        self.seats: dict[str, SeatResult] = {}
        self.alerts: dict[str, Alert] = {}
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        self.hang_up()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def publish(self, event: str, message: BaseModel, event_id: int | None = None) -> None:
        """Update the snapshot and send one SSE event, as the worker does after each change.

        `event_id` is the event's `id:` line: the worker sends its outbox sequence there.
        """
        self._loop.call_soon_threadsafe(self._publish, event, message, event_id)

    def clients(self) -> int:
        return len(self._clients)

    def hang_up(self) -> None:
        """End every open event stream, as a worker restart would; browsers reconnect."""

        def end_streams() -> None:
            for queue in self._clients:
                queue.put_nowait(None)
            self._clients.clear()

        self._loop.call_soon_threadsafe(end_streams)

    def _publish(self, event: str, message: BaseModel, event_id: int | None) -> None:
        if isinstance(message, StateOfParties):
            self.state = message
        elif isinstance(message, SeatResult):
            self.seats[message.constituency_id] = message
        elif isinstance(message, Alert):
            self.alerts[message.alert_id] = message
        id_line = f"id: {event_id}\n" if event_id is not None else ""
        chunk = f"{id_line}event: {event}\ndata: {message.model_dump_json()}\n\n".encode()
        for queue in self._clients:
            queue.put_nowait(chunk)

    async def _start(self) -> None:
        api = web.Application()
        faust_app = create_app(Settings())
        for path, view in live_page.ROUTES.items():
            # Fresh instances: `web.views` is keyed by path, and Faust's own index view
            # replaces ours at "/" there once its blueprints are applied.
            handler = _page_handler(view(faust_app, web=faust_app.web))
            api.router.add_get(path, handler)
        api.router.add_get("/api/state", self._state)
        api.router.add_get("/api/seats", self._seats)
        api.router.add_get("/api/alerts", self._alerts)
        api.router.add_get("/api/events", self._events)
        self._runner = web.AppRunner(api)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.model_dump(mode="json"))

    async def _seats(self, request: web.Request) -> web.Response:
        return web.json_response({k: v.model_dump(mode="json") for k, v in self.seats.items()})

    async def _alerts(self, request: web.Request) -> web.Response:
        return web.json_response([a.model_dump(mode="json") for a in self.alerts.values()])

    async def _events(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        # Subscribed before the headers go out: the page counts as live once it sees them.
        self._clients.add(queue)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            # Reconnect quickly after a hang-up (the browser's default wait is about 3 s).
            await response.write(b"retry: 300\n: subscribed\n\n")
            while (chunk := await queue.get()) is not None:
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response


def _page_handler(view: Any) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> Any:
        return await view(request)

    return handle


@pytest.fixture
def fake_api() -> Iterator[FakeLiveApi]:
    server = FakeLiveApi()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- the browser ----


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    try:
        with chromium(viewport=VIEWPORT, timezone_id="Europe/London") as context:
            yield context
    except ChromiumMissing as missing:
        pytest.fail(f"no browser for the live page tests: {missing}", pytrace=False)


class PageProblems:
    """Console errors and uncaught exceptions seen while a test drove the page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Request) -> None:
        # A reload aborts the open event stream; that is the browser's doing, not the page's.
        if request.failure != "net::ERR_ABORTED":
            self.errors.append(f"failed: {request.url} {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


def open_live_page(page: Page, base_url: str) -> PageProblems:
    problems = PageProblems(page)
    page.goto(base_url + "/")
    # Ready means: snapshot applied, hex map drawn and the event stream open.
    page.wait_for_function(
        "() => window.liveResults && window.liveResults.model.ready"
        " && document.querySelectorAll('[data-testid=hex]').length > 0"
        " && document.getElementById('connection').dataset.status === 'live'",
        timeout=30_000,
    )
    return problems


# ---- checks shared by the dev-mode tests and the test against the worker ----


def assert_page_shows(page: Page, state: dict[str, Any], seats: dict[str, dict[str, Any]]) -> None:
    """The page agrees with the API's snapshot: map, seat bar, table, counter, majority line."""
    winners = {ons: s["winning_party"] for ons, s in seats.items() if s.get("winning_party")}
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=hex][data-party]').length === n",
        arg=len(winners),
        timeout=15_000,
    )
    shown = page.eval_on_selector_all(
        "[data-testid=hex][data-party]", "hexes => hexes.map(h => [h.dataset.ons, h.dataset.party])"
    )
    assert dict(shown) == winners

    total = state["total_seats"]
    assert page.get_by_test_id("seats-declared").inner_text() == (
        f"{state['seats_declared']}/{total}"
    )

    with_seats = {p["party"]: p["seats"] for p in state["parties"] if p["seats"]}
    # Segment widths animate; let them settle before measuring them against the bar.
    page.wait_for_timeout(800)
    segments = page.eval_on_selector_all(
        "[data-testid=seat-bar-segment]",
        "segs => segs.map(s => [s.dataset.party, +s.dataset.seats,"
        " s.getBoundingClientRect().width])",
    )
    assert {party: won for party, won, _ in segments} == with_seats
    assert sum(won for _, won, _ in segments) == sum(with_seats.values())
    bar = page.get_by_test_id("seat-bar").bounding_box()
    line = page.get_by_test_id("majority-line").bounding_box()
    assert bar is not None and line is not None
    for party, won, width in segments:
        assert width == pytest.approx(bar["width"] * won / total, abs=1.5), party
    line_centre = line["x"] + line["width"] / 2 - bar["x"]
    assert line_centre / bar["width"] == pytest.approx(
        state["majority_line"] / total, abs=1 / bar["width"]
    )

    rows = page.eval_on_selector_all(
        "[data-testid=party-row]",
        "rows => rows.map(r => [r.dataset.party,"
        " +r.querySelector('[data-field=seats]').dataset.value])",
    )
    table = dict(rows)
    for party, won in with_seats.items():
        # A party with seats has its own row, unless it is one of those summed into "Others".
        assert table.get(party) in (won, None), party
    assert sum(table.values()) == sum(with_seats.values())


# ---- dev mode: the fake API ----


def test_page_follows_pushed_results(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    problems = open_live_page(page, fake_api.base_url)
    assert page.get_by_test_id("hex").count() == 650
    assert page.locator("[data-testid=hex][data-party]").count() == 0

    pushed = results[:PUSHED_SEATS]
    first = pushed[0]
    fake_api.publish(
        "alert",
        alert_for(
            first,
            AlertType.FIRST_DECLARATION,
            AlertPriority.HIGH,
            f"First declaration: {first.constituency_name}",
        ),
    )
    for count, seat in enumerate(pushed, start=1):
        fake_api.publish("result", seat)
        fake_api.publish("state", state_after(pushed[:count]))
    shock = next(seat for seat in reversed(pushed) if seat.gain)
    fake_api.publish(
        "alert",
        alert_for(
            shock,
            AlertType.SHOCK_GAIN,
            AlertPriority.FLASH,
            f"{shock.result_label} in {shock.constituency_name}",
        ),
    )

    state = state_after(pushed).model_dump(mode="json")
    seats = {s.constituency_id: s.model_dump(mode="json") for s in pushed}
    assert_page_shows(page, state, seats)
    assert page.locator("[data-testid=hex][data-party]").count() == PUSHED_SEATS

    ticker = page.get_by_test_id("ticker-item")
    assert ticker.first.get_attribute("data-ons") == pushed[-1].constituency_id
    assert pushed[-1].constituency_name in ticker.first.inner_text()

    banners = page.get_by_test_id("alert-banner")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=alert-banner]').length === 2"
    )
    assert banners.first.get_attribute("data-priority") == "flash"
    assert shock.constituency_name in banners.first.inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # let the last bar and hex transitions finish
    page.screenshot(path=str(ARTIFACTS / "live-page.png"))
    assert problems.errors == []

    # A reload rebuilds everything from the snapshot alone.
    page.reload()
    page.wait_for_function("() => window.liveResults && window.liveResults.model.ready")
    assert_page_shows(page, state, seats)
    assert problems.errors == []

    # All live so far: no banner. One alert of a rehearsal, and the page says so at once.
    banner = page.get_by_test_id("rehearsal-banner")
    assert banner.is_hidden()
    assert page.locator("#masthead-kicker").text_content() == "Live results"
    rehearsed = alert_for(first, AlertType.SEAT_GAIN, AlertPriority.LOW, "A rehearsal's gain")
    fake_api.publish("alert", rehearsed.model_copy(update={"alert_id": "r", "rehearsal": True}))
    banner.wait_for(state="visible")
    assert "REHEARSAL" in banner.inner_text()
    assert page.locator("#masthead-kicker").text_content() == "Rehearsal"
    assert problems.errors == []


def test_names_are_shown_literally(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    problems = open_live_page(page, fake_api.base_url)
    seat = results[0]
    assert seat.winner is not None
    evil_winner = seat.winner.model_copy(update={"name": EVIL_NAME})
    evil = seat.model_copy(
        update={
            "constituency_name": "<b>Bold</b> & " + seat.constituency_name,
            "winner": evil_winner,
            "candidates": [evil_winner, *seat.candidates[1:]],
        }
    )
    fake_api.publish("result", evil)
    fake_api.publish("state", state_after([evil]))
    fake_api.publish(
        "alert", alert_for(evil, AlertType.SEAT_GAIN, AlertPriority.NORMAL, EVIL_NAME[:140])
    )

    item = page.get_by_test_id("ticker-item").first
    item.wait_for()
    assert EVIL_NAME in item.inner_text()
    assert "<b>Bold</b> & " in item.inner_text()
    page.get_by_test_id("alert-banner").first.wait_for()
    assert EVIL_NAME in page.get_by_test_id("alert-banner").first.inner_text()
    title = page.locator(f"[data-testid=hex][data-ons={seat.constituency_id}] title")
    assert title.text_content() is not None
    assert "<b>Bold</b>" not in (title.text_content() or "")  # the map uses its own names
    assert page.locator("#ticker script, #ticker img, #ticker b, #alerts img").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert problems.errors == []


def test_page_catches_up_after_reconnecting(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    """Results published while the stream was down arrive through the snapshot on reconnect."""
    problems = open_live_page(page, fake_api.base_url)
    first, second = results[:5], results[:12]
    rush = first[-1].model_copy(
        update={"figures_pending": True, "candidates": [], "majority": None, "sequence": 4}
    )
    fake_api.publish("result", rush)
    for seat in first:
        fake_api.publish("result", seat)
    fake_api.publish("state", state_after(first))
    page.wait_for_function("() => document.querySelectorAll('[data-party][data-ons]').length >= 5")

    fake_api.hang_up()
    page.wait_for_function("() => document.getElementById('connection').dataset.status !== 'live'")
    for seat in second[len(first) :]:
        fake_api.publish("result", seat)  # nobody is listening: only the snapshot has these
    fake_api.publish("state", state_after(second))

    page.wait_for_function("() => document.getElementById('connection').dataset.status === 'live'")
    assert_page_shows(
        page,
        state_after(second).model_dump(mode="json"),
        {s.constituency_id: s.model_dump(mode="json") for s in second},
    )
    # The full result replaced the rush that came before it.
    item = page.locator(f"[data-testid=ticker-item][data-ons={first[-1].constituency_id}]")
    assert "Figures to follow" not in item.inner_text()
    assert problems.errors == []


def _declaration_time_order(seats: list[SeatResult]) -> list[str]:
    """The ticker's order, as /api/declarations: the night's (time, name, ONS id), reversed."""
    ordered = sorted(
        seats, key=lambda s: (s.declared_at, s.constituency_name, s.constituency_id), reverse=True
    )
    return [s.constituency_id for s in ordered]


def test_lists_follow_declaration_time_not_arrival(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    """Results and alerts that arrive out of order take their place by time, not the top."""
    problems = open_live_page(page, fake_api.base_url)
    declared = results[:30]  # in declaration order
    late = declared[24]  # would be sixth in the ticker; it arrives after all the others
    arriving = [s for s in reversed(declared) if s is not late]
    for sequence, seat in enumerate([*arriving, late], start=1):
        fake_api.publish("result", seat.model_copy(update={"sequence": sequence}))
    fake_api.publish("state", state_after(declared))
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=hex][data-party]').length === n",
        arg=len(declared),
        timeout=15_000,
    )
    page.wait_for_function(
        "ons => Array.from(document.querySelectorAll('[data-testid=ticker-item]'))"
        ".some(li => li.dataset.ons === ons)",
        arg=late.constituency_id,
    )
    ticker = page.eval_on_selector_all(
        "[data-testid=ticker-item]", "items => items.map(li => li.dataset.ons)"
    )
    expected = _declaration_time_order(declared)
    assert ticker == expected[: len(ticker)]
    assert ticker.index(late.constituency_id) == expected.index(late.constituency_id) > 0

    # The first declaration's alert, then two of one later moment (their order is the
    # event id, the worker's outbox sequence), and the exit poll last of all.
    poll = Alert(
        alert_id="exit_poll:test",
        election_id=ELECTION_ID,
        rehearsal=False,
        type=AlertType.EXIT_POLL,
        priority=AlertPriority.FLASH,
        headline="Exit poll: Labour landslide",
        body="",
        occurred_at=dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST),
    )
    first = alert_for(declared[0], AlertType.FIRST_DECLARATION, AlertPriority.HIGH, "First")
    gain = alert_for(declared[-1], AlertType.SEAT_GAIN, AlertPriority.NORMAL, "Gain")
    shock = alert_for(declared[-1], AlertType.SHOCK_GAIN, AlertPriority.FLASH, "Shock")
    for event_id, item in enumerate([first, gain, shock, poll], start=101):
        # As the worker sends them: no sequence in the alert, only the event id.
        fake_api.publish("alert", item.model_copy(update={"sequence": None}), event_id=event_id)
    page.wait_for_function(
        "() => window.liveResults.model.alerts.size === 4"
        " && document.querySelectorAll('[data-testid=alert-banner]').length === 3"
    )
    newest = page.evaluate(
        "() => window.liveResults.helpers.newestAlerts("
        "window.liveResults.model.alerts.values(), 10).map(a => a.alert_id)"
    )
    assert newest == [shock.alert_id, gain.alert_id, first.alert_id, poll.alert_id]
    banners = page.eval_on_selector_all(
        "[data-testid=alert-banner]", "banners => banners.map(b => b.dataset.alertId)"
    )
    assert banners == newest[:3]

    # A reload builds the same lists from the snapshot alone.
    page.reload()
    page.wait_for_function("() => window.liveResults && window.liveResults.model.ready")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=alert-banner]').length === 3"
    )
    assert (
        page.eval_on_selector_all(
            "[data-testid=ticker-item]", "items => items.map(li => li.dataset.ons)"
        )
        == ticker
    )
    assert problems.errors == []


# ---- the projection strip and its history chart ----

# party: (seats, low, high, exit poll)
Figures = dict[str, tuple[int, int, int, int | None]]

EARLY_FIGURES: Figures = {
    "Lab": (407, 388, 426, 410),
    "Con": (140, 122, 161, 131),
    "LD": (60, 51, 70, 61),
    "RUK": (14, 6, 20, 13),
    "Ind": (13, 8, 18, None),  # the exit poll did not name it
    "SNP": (12, 8, 17, 10),
    "Green": (3, 1, 5, 2),
    "Spk": (1, 1, 1, None),
    "DUP": (0, 0, 1, None),  # no projected seats: not in the strip
}
# The SNP rises past Reform into the top four: its line joins the chart.
LATER_FIGURES: Figures = {
    "Lab": (400, 385, 417, 410),
    "Con": (139, 125, 152, 131),
    "LD": (66, 58, 73, 61),
    "SNP": (20, 14, 26, 10),
    "RUK": (12, 8, 17, 13),
    "Ind": (9, 5, 12, None),
    "Green": (3, 2, 4, 2),
    "Spk": (1, 1, 1, None),
}


def projected_state(
    declared: list[SeatResult],
    figures: Figures | None,
    *,
    sequence: int | None = None,
    with_figures: int | None = None,
) -> StateOfParties:
    """The state after these seats, carrying a projection of the given figures (None: none)."""
    state = state_after(declared)
    projection = None
    if figures is not None:
        undeclared = 650 - len(declared)
        region, nation = undeclared // 2, undeclared // 4
        projection = SeatProjection(
            model="regional",
            seats_declared=len(declared),
            seats_with_figures=len(declared) if with_figures is None else with_figures,
            swing_from={
                "region": region,
                "nation": nation,
                "national": undeclared - region - nation,
            },
            as_of=declared[-1].declared_at,
            parties=[
                ProjectedParty(
                    party=party, seats=seats, low=low, high=high, declared=0, exit_poll=poll
                )
                for party, (seats, low, high, poll) in figures.items()
            ],
        )
    update: dict[str, Any] = {"projection": projection}
    if sequence is not None:
        update["sequence"] = sequence
    return state.model_copy(update=update)


def strip_rows(page: Page) -> dict[str, tuple[str, str, str]]:
    """Each party in the strip: its seats, range and exit poll, as shown."""
    rows = page.eval_on_selector_all(
        "[data-testid=projection-party]",
        "rows => rows.map(r => [r.dataset.party, ...['seats', 'range', 'exit-poll']"
        ".map(f => r.querySelector(`[data-field=${f}]`).textContent)])",
    )
    return {party: (seats, low_high, poll) for party, seats, low_high, poll in rows}


def chart_lines(page: Page) -> dict[str, int]:
    """The chart's lines: party to the number of points drawn."""
    return dict(
        page.eval_on_selector_all(
            "[data-testid=projection-line]",
            "ls => ls.map(l => [l.dataset.party, +l.dataset.points])",
        )
    )


def shown_text(page: Page, test_id: str) -> str:
    """An element's text as written (inner_text would apply the CSS text-transform)."""
    return page.get_by_test_id(test_id).text_content() or ""


def uk_clock(when: dt.datetime) -> str:
    return when.astimezone(UK).strftime("%H:%M")


def test_projection_strip_and_chart(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    """The snapshot's projection shows under the seat bar; pushed states update the strip and
    add to the chart; a late state takes its place in the history; a state without one keeps
    the last."""
    early, later = results[:40], results[:45]
    fake_api.state = projected_state(early, EARLY_FIGURES, with_figures=38)
    problems = open_live_page(page, fake_api.base_url)
    strip = page.get_by_test_id("projection")
    strip.wait_for()
    assert strip.get_attribute("aria-label")

    assert strip_rows(page) == {
        "Lab": ("407", "388–426", "Exit poll 410"),
        "Con": ("140", "122–161", "Exit poll 131"),
        "LD": ("60", "51–70", "Exit poll 61"),
        "RUK": ("14", "6–20", "Exit poll 13"),
        "Ind": ("13", "8–18", "Exit poll –"),
        "Others": ("16", "", "Exit poll –"),  # the SNP, the Greens and the Speaker
    }
    order = page.eval_on_selector_all(
        "[data-testid=projection-party]", "rows => rows.map(r => r.dataset.party)"
    )
    assert order == ["Lab", "Con", "LD", "RUK", "Ind", "Others"]
    basis = shown_text(page, "projection-basis")
    assert "from 38 of 650 declared" in basis
    assert basis.startswith("Projection (regional swing)")
    assert "2 awaiting figures" in basis
    as_of = shown_text(page, "projection-as-of")
    assert uk_clock(early[-1].declared_at) in as_of

    # The chart starts from the snapshot: one point on each line of the top four.
    chart = page.get_by_test_id("projection-chart")
    assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-label")
    assert chart.get_attribute("data-points") == "1"
    assert chart_lines(page) == {"Lab": 1, "Con": 1, "LD": 1, "RUK": 1}
    polls = dict(
        page.eval_on_selector_all(
            "[data-testid=projection-exit-poll]",
            "ls => ls.map(l => [l.dataset.party, +l.dataset.seats])",
        )
    )
    assert polls == {"Lab": 410, "Con": 131, "LD": 61, "RUK": 13}

    # A pushed state: the strip follows it, and every line gets a point.
    fake_api.publish("state", projected_state(later, LATER_FIGURES))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=projection-chart]').dataset.points === '2'"
    )
    rows = strip_rows(page)
    assert rows["Lab"] == ("400", "385–417", "Exit poll 410")
    assert rows["SNP"] == ("20", "14–26", "Exit poll 10")
    assert list(rows) == ["Lab", "Con", "LD", "SNP", "RUK", "Others"]
    assert "from 45 of 650 declared" in shown_text(page, "projection-basis")
    assert uk_clock(later[-1].declared_at) in shown_text(page, "projection-as-of")
    # The SNP's line joins the chart, drawn from the start of the history.
    assert chart_lines(page) == {"Lab": 2, "Con": 2, "LD": 2, "SNP": 2, "RUK": 2}

    # A state that arrives late (an earlier declaration, an earlier sequence) goes into the
    # history in its place and leaves the strip on the newest.
    late = projected_state(results[:30], EARLY_FIGURES, sequence=30)
    fake_api.publish("state", late)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=projection-chart]').dataset.points === '3'"
    )
    history = page.evaluate("() => window.liveResults.model.projectionHistory.map(p => p.sequence)")
    assert history == [30, 40, 45]
    assert chart_lines(page) == {"Lab": 3, "Con": 3, "LD": 3, "SNP": 3, "RUK": 3}
    assert strip_rows(page)["Lab"][0] == "400"

    # A state without a projection (an /api/state from before it was carried) keeps the last.
    fake_api.publish("state", projected_state(results[:46], None))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=seats-declared]').textContent === '46/650'"
    )
    assert strip.is_visible()
    assert strip_rows(page)["Lab"][0] == "400"
    assert chart.get_attribute("data-points") == "3"
    assert problems.errors == []


def test_no_projection_no_strip(
    fake_api: FakeLiveApi, page: Page, results: list[SeatResult]
) -> None:
    """Before any projection the strip is hidden; a projection naming no party breaks nothing."""
    problems = open_live_page(page, fake_api.base_url)
    strip = page.get_by_test_id("projection")
    assert strip.is_hidden()
    fake_api.publish("state", projected_state(results[:5], None))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=seats-declared]').textContent === '5/650'"
    )
    assert strip.is_hidden()
    assert page.get_by_test_id("projection-party").count() == 0

    empty = projected_state(results[:6], None).model_copy(
        update={
            "projection": SeatProjection(model="uniform", seats_declared=6, seats_with_figures=6)
        }
    )
    fake_api.publish("state", empty)
    strip.wait_for()
    assert "No projected seats yet" in strip.inner_text()
    assert "from 6 of 650 declared" in shown_text(page, "projection-basis")
    assert page.get_by_test_id("projection-chart").get_attribute("data-points") == "0"
    assert page.get_by_test_id("projection-line").count() == 0
    assert problems.errors == []


def test_static_files_are_local_and_limited(fake_api: FakeLiveApi) -> None:
    """Nothing outside the page's own three files is served from /static/."""
    with urllib.request.urlopen(fake_api.base_url + "/") as response:
        html = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "http://" not in html and "https://" not in html
    for name in ("../live_page.py", "..%2Flive_page.py", "index.htm", ""):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(fake_api.base_url + "/static/" + name)
        assert err.value.code == 404


# ---- against the real worker during a replay ----


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def squeezed(feed: list[Outgoing], quiet_gap: dt.timedelta = QUIET_GAP) -> list[Outgoing]:
    """The feed in the same order, with every lull longer than `quiet_gap` cut to it."""
    if not feed:
        return []
    out = [feed[0]]
    clock = previous = feed[0].at
    for item in feed[1:]:
        clock += min(max(item.at - previous, dt.timedelta(0)), quiet_gap)
        previous = max(previous, item.at)
        out.append(dataclasses.replace(item, at=clock))
    return out


@dataclasses.dataclass
class Sample:
    """What the page showed at one moment of the replay."""

    at_s: float
    declared: str
    coloured_hexes: int
    bar_seats: int


def sample_page(page: Page, began: float) -> Sample:
    coloured, bar = page.evaluate(
        "() => [document.querySelectorAll('[data-testid=hex][data-party]').length,"
        " Array.from(document.querySelectorAll('[data-testid=seat-bar-segment]'))"
        ".reduce((n, s) => n + (+s.dataset.seats || 0), 0)]"
    )
    declared = page.get_by_test_id("seats-declared").inner_text()
    return Sample(round(time.monotonic() - began, 1), declared, int(coloured), int(bar))


@pytest.fixture
def pipeline(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, unique_topic: Callable[..., str]
) -> Pipeline:
    return new_pipeline(kafka_bootstrap, redis_url, redis_prefix, unique_topic)


def test_page_follows_the_worker(pipeline: Pipeline, page: Page) -> None:
    """A real worker takes the whole night in under a minute; the page fills in as it goes and
    ends on the official result."""
    feed = build_outgoing(DATA_DIR)
    paced = squeezed(feed)
    speed = (paced[-1].at - paced[0].at).total_seconds() / NIGHT_S
    with pipeline.worker("live-page") as worker:
        worker.wait_for_log("Ready", timeout=120)
        problems = open_live_page(page, worker.base_url)
        assert page.get_by_test_id("hex").count() == 650
        assert page.locator("[data-testid=hex][data-party]").count() == 0
        # The worker is a rehearsal's (its default): so says the page before any result.
        rehearsal_banner = page.get_by_test_id("rehearsal-banner")
        rehearsal_banner.wait_for(state="visible", timeout=10_000)

        failure: list[BaseException] = []

        def send() -> None:
            try:
                pipeline.send(paced, speed=speed)
            except BaseException as exc:  # reported by the test, not lost in the thread
                failure.append(exc)

        sender = threading.Thread(target=send, name="replay", daemon=True)
        began = time.monotonic()
        sender.start()
        samples: list[Sample] = []
        deadline = began + NIGHT_S + 180
        while True:
            samples.append(sample_page(page, began))
            if not sender.is_alive() and samples[-1].declared == "650/650":
                break
            assert time.monotonic() < deadline, f"the page never reached 650/650: {samples}"
            if worker.process is not None and worker.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{worker.tail()}")
            page.wait_for_timeout(SAMPLE_EVERY_S * 1000)
        sender.join(timeout=10)
        assert not failure, f"the replay failed: {failure[0]!r}"
        night_took = samples[-1].at_s

        # The page moved with the night, not in one jump at the end.
        during = [s for s in samples if 0 < s.coloured_hexes < 650]
        assert len(during) >= 3, samples
        hexes = [s.coloured_hexes for s in samples]
        assert hexes == sorted(hexes), f"coloured hexes went backwards: {samples}"
        assert any(b.coloured_hexes > a.coloured_hexes for a, b in itertools.pairwise(during)), (
            samples
        )
        assert len({s.bar_seats for s in during}) >= 3, f"the seat bar hardly moved: {samples}"

        # The end of the night: the official result, read from the page itself.
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=hex][data-party]').length === 650",
            timeout=15_000,
        )
        assert page.get_by_test_id("seats-declared").inner_text() == "650/650"
        bar = dict(
            page.eval_on_selector_all(
                "[data-testid=seat-bar-segment]",
                "segs => segs.map(s => [s.dataset.party, +s.dataset.seats])",
            )
        )
        assert bar == OFFICIAL_SEATS
        hex_parties = page.eval_on_selector_all(
            "[data-testid=hex][data-party]", "hexes => hexes.map(h => h.dataset.party)"
        )
        assert Counter(hex_parties) == Counter(OFFICIAL_SEATS)
        assert "Labour win a majority" in page.locator("#seats-headline").inner_text()

        # And it agrees with the API to the pixel: map, bar widths, majority line, table.
        state = _get_json(worker.base_url + "/api/state")
        seats = _get_json(worker.base_url + "/api/seats")
        assert state["seats_declared"] == 650
        page.wait_for_function(
            "seq => (window.liveResults.model.state || {}).sequence >= seq",
            arg=state["sequence"],
            timeout=30_000,
        )
        assert_page_shows(page, state, seats)

        banners = page.get_by_test_id("alert-banner")
        assert banners.count() >= 1
        shown = [banners.nth(i).is_visible() for i in range(banners.count())]
        # The loudest banner always shows; any left out for lack of room are the last ones.
        assert shown[0] and shown == sorted(shown, reverse=True), shown
        ticker = page.get_by_test_id("ticker-item")
        assert any(ticker.nth(i).is_visible() for i in range(ticker.count())), (
            "long alert headlines pushed every declaration off the ticker"
        )

        # Every seat declared: the projection is the result, beside the exit poll's 410.
        page.wait_for_function(
            "() => { const s = document.querySelector("
            "'[data-testid=projection-party][data-party=Lab] [data-field=seats]');"
            " return s && s.textContent === '411'; }",
            timeout=15_000,
        )
        rows = strip_rows(page)
        assert rows["Lab"] == ("411", "411–411", "Exit poll 410"), rows
        assert rows["Con"][0] == "121" and rows["LD"][0] == "72", rows
        basis = shown_text(page, "projection-basis")
        assert "of 650 declared" in basis, basis
        lines = chart_lines(page)
        assert {"Lab", "Con", "LD"} <= set(lines), lines
        drawn = int(page.get_by_test_id("projection-chart").get_attribute("data-points") or 0)
        assert drawn >= 3 and set(lines.values()) == {drawn}, (drawn, lines)
        assert (
            page.locator("[data-testid=projection-exit-poll][data-party=Lab]").get_attribute(
                "data-seats"
            )
            == "410"
        )

        # The replayed night is a rehearsal, and every result and alert of it says so.
        assert rehearsal_banner.is_visible() and "REHEARSAL" in rehearsal_banner.inner_text()
        assert page.evaluate(
            "() => { const m = window.liveResults.model; return m.state.rehearsal === true"
            " && Array.from(m.seats.values()).every(s => s.rehearsal === true)"
            " && m.alerts.size > 0 && Array.from(m.alerts.values()).every(a => a.rehearsal); }"
        )

        ARTIFACTS.mkdir(exist_ok=True)
        page.wait_for_timeout(500)  # let the last bar and hex transitions finish
        page.screenshot(path=str(ARTIFACTS / "live-page-final.png"))
        page.screenshot(path=str(ARTIFACTS / "live-page-projection.png"))
        assert problems.errors == []
    print(f"night replayed at {speed:.0f}x in {night_took:.0f}s; samples: {samples}")
