"""The desk page in a real browser: against a fake desk API, and against a real worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, ConsoleMessage, Locator, Page, Request, Route
from standardwebhooks import Webhook

from schemas.alert import Alert, AlertPriority, AlertType
from scripts.replay import build_outgoing
from streams.pipeline.app import create_app
from streams.rules.reference import Register, load_register
from streams.settings import Settings
from streams.web import desk_page
from tests.integration.browser import ChromiumMissing, chromium
from tests.integration.helpers import WorkerProcess
from tests.integration.pipeline import Pipeline, clean_night_alert_ids
from tests.integration.test_desk import give_token
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK
from tests.unit.test_webhook_signing import new_secret

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "streams" / "data" / "ge2024"
ARTIFACTS = ROOT / "artifacts" / "desk"
ELECTION_ID = "parl.2024-07-04"
VIEWPORT = {"width": 1920, "height": 1080}
EDITOR_TOKEN = "desk_editor-token-of-ed-for-the-browser"
VIEWER_TOKEN = "desk_viewer-token-of-vera-for-the-browser"
EVIL = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
RICHMOND = "E14001444"  # Rishi Sunak's seat: the prime minister's result, held by policy
WELWYN_HATFIELD = "E14001573"  # Grant Shapps, Defence Secretary, lost it to Labour
BST = dt.timezone(dt.timedelta(hours=1))


# ---- a fake of the desk API contract (streams/web/desk.py implements it) ----


@dataclass(frozen=True)
class Seen:
    """One request the fake desk API answered."""

    method: str
    url: str  # as sent
    path: str  # decoded
    authorization: str | None
    body: Any


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat()


def alert(
    kind: AlertType,
    priority: AlertPriority,
    headline: str,
    ons_id: str | None,
    name: str | None,
    body: str = "",
    alert_id: str | None = None,
) -> dict[str, Any]:
    """An alert as the worker makes it (schemas/alert.py), as JSON."""
    made = Alert(
        alert_id=alert_id or f"{kind.value}:{ons_id}:1",
        election_id=ELECTION_ID,
        rehearsal=True,
        type=kind,
        priority=priority,
        headline=headline,
        body=body,
        occurred_at=dt.datetime(2024, 7, 5, 4, 52, tzinfo=BST),
        constituency_id=ons_id,
        constituency_name=name,
    )
    return made.model_dump(mode="json")


def held(
    made: dict[str, Any],
    reason: str = "policy",
    held_at: dt.datetime | None = None,
    release_at: dt.datetime | None = None,
) -> dict[str, Any]:
    reasons = {
        "policy": "its type waits for an editor",
        "seat_not_called": "an editor holds this seat's call",
        "amends_held": "it amends an alert still on the desk",
    }
    return {
        "alert": made,
        "held_at": iso(held_at or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)),
        "release_at": iso(release_at) if release_at else None,
        "reason": reason,
        "reason_text": reasons[reason],
    }


class FakeDeskApi:
    """/api/desk/ as the contract says, with a desk the test controls and every request kept.

    The page and its files are served by the real `streams.web.desk_page` views, so what the
    browser loads is exactly what the worker serves. Changes made with `change()` bump the
    version and go to every open event stream, as the worker's do.
    """

    def __init__(self, register: Register) -> None:
        self.register = register
        self.people = {EDITOR_TOKEN: ("ed", "editor"), VIEWER_TOKEN: ("vera", "viewer")}
        self.mode = "rehearsal"
        self.clock_skew = dt.timedelta(0)  # the worker's clock minus the browser's
        self.version = 1
        self.held: list[dict[str, Any]] = []
        self.calls_held: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.conflicts: list[dict[str, Any]] = []
        self.decided: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self.heartbeat_s = 0.5  # far more often than the worker's 15 s: the parser sees many
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- the test's side --

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        self.hang_up()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def change(self, apply: Callable[[FakeDeskApi], None]) -> None:
        """Change the desk (in the server's thread), then push it to every open stream."""

        async def run() -> None:
            apply(self)
            self._changed()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def quietly(self, apply: Callable[[FakeDeskApi], None]) -> None:
        """Change what the fake knows without telling any stream (another worker's doing)."""

        async def run() -> None:
            apply(self)

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def hang_up(self) -> None:
        """End every open event stream, as a worker restart would."""

        def end_streams() -> None:
            for queue in self._clients:
                queue.put_nowait(None)
            self._clients.clear()

        self._loop.call_soon_threadsafe(end_streams)

    def clients(self) -> int:
        return len(self._clients)

    def posts(self) -> list[Seen]:
        return [seen for seen in list(self.requests) if seen.method == "POST"]

    # -- the server's side --

    def queue(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "now": iso(dt.datetime.now(dt.UTC) + self.clock_skew),
            "version": self.version,
            "held": self.held,
            "calls_held": self.calls_held,
            "actions": self.actions[:50],
            "conflicts": self.conflicts,
        }

    def _changed(self) -> None:
        self.version += 1
        chunk = b"event: desk\ndata: " + orjson.dumps(self.queue()) + b"\n\n"
        for queue in self._clients:
            queue.put_nowait(chunk)

    async def _start(self) -> None:
        api = web.Application(middlewares=[self._keep])
        faust_app = create_app(Settings())
        for path, view in desk_page.ROUTES.items():
            api.router.add_get(path, _page_handler(view(faust_app, web=faust_app.web)))
        api.router.add_get("/api/desk/queue", self._queue)
        api.router.add_get("/api/desk/events", self._events)
        api.router.add_post("/api/desk/alerts/{alert_id}/{verb}", self._decide)
        api.router.add_post("/api/desk/seats/{ons_id}/call", self._call)
        api.router.add_post("/api/desk/seats/{ons_id}/choose", self._choose)
        self._runner = web.AppRunner(api)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    @web.middleware
    async def _keep(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            body = await request.json() if request.can_read_body else None
            self.requests.append(
                Seen(
                    request.method,
                    str(request.url),
                    request.path,
                    request.headers.get("Authorization"),
                    body,
                )
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _person(self, request: web.Request, needed: str) -> tuple[str, web.Response | None]:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        if token not in self.people:
            return "", web.json_response(
                {"error": "missing or unknown token"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        name, role = self.people[token]
        if needed == "editor" and role == "viewer":
            return name, web.json_response(
                {"error": f"{name} is a viewer: this needs editor"}, status=403
            )
        return name, None

    async def _queue(self, request: web.Request) -> web.Response:
        _, refused = self._person(request, "viewer")
        return refused or web.json_response(self.queue())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        _, refused = self._person(request, "viewer")
        if refused is not None:
            return refused
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._clients.add(queue)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            await response.write(b"event: desk\ndata: " + orjson.dumps(self.queue()) + b"\n\n")
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), self.heartbeat_s)
                except TimeoutError:
                    chunk = b": heartbeat\n\n"
                if chunk is None:
                    break
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response

    async def _decide(self, request: web.Request) -> web.Response:
        who, refused = self._person(request, "editor")
        if refused is not None:
            return refused
        alert_id, verb = request.match_info["alert_id"], request.match_info["verb"]
        body = await request.json()
        if alert_id in self.decided:
            decision = self.decided[alert_id]
            return web.json_response(
                {
                    "error": "already_decided",
                    "detail": f"{decision['action']} by {decision['by']}",
                    "decision": decision,
                },
                status=409,
            )
        found = next((h for h in self.held if h["alert"]["alert_id"] == alert_id), None)
        if found is None:
            return web.json_response(
                {"error": "not_held", "detail": f"no alert {alert_id} is held on the desk"},
                status=404,
            )
        edited = verb == "approve" and ("headline" in body or "body" in body)
        action = "kill" if verb == "kill" else "edit" if edited else "approve"
        made = found["alert"]
        at = iso(dt.datetime.now(dt.UTC))
        self.decided[alert_id] = {"action": action, "by": who, "at": at}
        self.held.remove(found)
        entry = {
            "action": action,
            "by": who,
            "at": at,
            "alert_id": alert_id,
            "headline": body.get("headline", made["headline"]),
            "constituency_id": made["constituency_id"],
        }
        if edited:
            entry["original_headline"] = made["headline"]
        if body.get("reason"):
            entry["detail"] = body["reason"]
        self.actions.insert(0, entry)
        self._changed()
        return web.json_response({"alert_id": alert_id, "decision": action, "by": who})

    async def _choose(self, request: web.Request) -> web.Response:
        who, refused = self._person(request, "editor")
        if refused is not None:
            return refused
        ons_id = request.match_info["ons_id"]
        source = (await request.json())["source"]
        [conflict] = [c for c in self.conflicts if c["constituency_id"] == ons_id]
        if source not in {s["source"] for s in conflict["sources"]}:
            return web.json_response({"error": f"no figures from {source!r}"}, status=404)
        # As the worker: the desk's correction goes on air and the sources agree again.
        self.conflicts.remove(conflict)
        self._changed()
        answer = {"constituency_id": ons_id, "source": f"desk:{who}", "revision": 1}
        return web.json_response(answer, status=202)

    async def _call(self, request: web.Request) -> web.Response:
        who, refused = self._person(request, "editor")
        if refused is not None:
            return refused
        ons_id = request.match_info["ons_id"]
        ref = self.register.constituency(ons_id)
        if ref is None:
            return web.json_response({"error": f"no constituency {ons_id}"}, status=404)
        body = await request.json()
        at = iso(dt.datetime.now(dt.UTC))
        self.calls_held = [c for c in self.calls_held if c["constituency_id"] != ons_id]
        if body["hold"]:
            self.calls_held.append(
                {
                    "constituency_id": ons_id,
                    "constituency_name": ref.name,
                    "by": who,
                    "at": at,
                    "note": body.get("note", ""),
                }
            )
        detail = (body.get("note") or "call held") if body["hold"] else "call let go"
        self.actions.insert(
            0,
            {
                "action": "override",
                "by": who,
                "at": at,
                "constituency_id": ons_id,
                "detail": detail,
            },
        )
        self._changed()
        return web.json_response({"constituency_id": ons_id, "hold": body["hold"]})


def _page_handler(view: Any) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> Any:
        return await view(request)

    return handle


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


TRUSS = alert(
    AlertType.FORMER_PRIME_MINISTER_DEFEATED,
    AlertPriority.FLASH,
    "Former prime minister Liz Truss loses South West Norfolk to Terry Jermy (Labour), "
    "majority 630",
    SOUTH_WEST_NORFOLK,
    "South West Norfolk",
    body="Terry Jermy (Labour) gains South West Norfolk from the Conservatives after a recount.",
)
SUNAK = alert(
    AlertType.PRIME_MINISTER_RESULT,
    AlertPriority.FLASH,
    "Prime Minister Rishi Sunak holds Richmond and Northallerton, majority 12,185",
    RICHMOND,
    "Richmond and Northallerton",
    body="Rishi Sunak (Conservative) holds Richmond and Northallerton.",
)
SHAPPS = alert(
    AlertType.CABINET_MINISTER_DEFEATED,
    AlertPriority.HIGH,
    "Defence Secretary Grant Shapps loses Welwyn Hatfield to Andrew Lewin (Labour), majority 3,799",
    WELWYN_HATFIELD,
    "Welwyn Hatfield",
    body="Andrew Lewin (Labour) gains Welwyn Hatfield.",
)
CONFLICT = {
    "constituency_id": SOUTH_WEST_NORFOLK,
    "constituency_name": "South West Norfolk",
    "counted": "pa",
    "sources": [
        {
            "source": "pa",
            "revision": 2,
            "winner": "Terry Jermy (Lab)",
            "majority": 630,
            "votes": {"Terry Jermy (Lab)": 11847, "Liz Truss (Con)": 11217},
        },
        {
            "source": "replay",
            "revision": 1,
            "winner": "Terry Jermy (Lab)",
            "majority": 600,
            "votes": {"Terry Jermy (Lab)": 11847, "Liz Truss (Con)": 11247},
        },
    ],
}


def a_night(desk: FakeDeskApi) -> None:
    """Three held alerts (the oldest first), a held call, two actions and a conflict."""
    now = dt.datetime.now(dt.UTC) + desk.clock_skew
    desk.held = [
        held(SUNAK, held_at=now - dt.timedelta(minutes=9)),
        held(SHAPPS, "seat_not_called", held_at=now - dt.timedelta(minutes=4)),
        held(TRUSS, held_at=now - dt.timedelta(seconds=50), release_at=now + dt.timedelta(hours=1)),
    ]
    desk.calls_held = [
        {
            "constituency_id": WELWYN_HATFIELD,
            "constituency_name": "Welwyn Hatfield",
            "by": "maria",
            "at": iso(now - dt.timedelta(minutes=5)),
            "note": "Lewin's agent disputes the bundle count",
        }
    ]
    desk.actions = [
        {
            "action": "override",
            "by": "maria",
            "at": iso(now - dt.timedelta(minutes=5)),
            "constituency_id": WELWYN_HATFIELD,
            "detail": "Lewin's agent disputes the bundle count",
        },
        {
            "action": "auto_release",
            "by": "auto-release",
            "at": iso(now - dt.timedelta(minutes=20)),
            "alert_id": "x1",
            "headline": "Labour's Keir Starmer holds Holborn and St Pancras",
        },
    ]
    desk.conflicts = [CONFLICT]


@pytest.fixture
def desk(register: Register) -> Iterator[FakeDeskApi]:
    server = FakeDeskApi(register)
    a_night(server)
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
        pytest.fail(f"no browser for the desk page tests: {missing}", pytrace=False)


class PageWatch:
    """What the page asked for and every problem it had while a test drove it. A refused
    request the test provokes (401, 403, 404, 409) is named in `expected_statuses`: Chromium
    logs each as a console error."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.expected_statuses: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("request", lambda request: self.urls.append(request.url))

    def _failed(self, request: Request) -> None:
        # The page aborts its own event stream on sign-out and reload.
        if request.failure != "net::ERR_ABORTED":
            self.errors.append(f"failed: {request.url} {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        status = re.search(r"status of (\d{3})", message.text)
        if status and int(status.group(1)) in self.expected_statuses:
            return
        self.errors.append(f"console: {message.text}")


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def connection(page: Page) -> str:
    return page.get_by_test_id("connection").get_attribute("data-status") or ""


def wait_live(page: Page, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=connection]').dataset.status === 'live'"
        " && window.electionDesk.model.events > 0",
        timeout=timeout,
    )


def sign_in(page: Page, token: str) -> None:
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("token-submit").click()


def open_desk(page: Page, base_url: str, token: str = EDITOR_TOKEN) -> PageWatch:
    watch = PageWatch(page)
    page.goto(base_url + "/desk")
    page.get_by_test_id("sign-in").wait_for()
    sign_in(page, token)
    wait_live(page)
    return watch


def card(page: Page, alert_id: str) -> Locator:
    return page.locator(f"[data-testid=held-alert][data-alert-id='{alert_id}']")


def held_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "[data-testid=held-alert]", "cards => cards.map(c => c.dataset.alertId)"
    )
    return ids


def wait_held(page: Page, ids: list[str], timeout: float = 15_000) -> None:
    page.wait_for_function(
        "ids => JSON.stringify(Array.from(document.querySelectorAll("
        "'[data-testid=held-alert]')).map(c => c.dataset.alertId)) === JSON.stringify(ids)",
        arg=ids,
        timeout=timeout,
    )


def assert_token_only_in_headers(desk: FakeDeskApi, watch: PageWatch, token: str) -> None:
    """Every API request carried the bearer header; no URL the browser asked for has it."""
    api = [seen for seen in desk.requests if "/api/desk/" in seen.url]
    assert api, "the page never asked the desk API"
    assert all(seen.authorization == f"Bearer {token}" for seen in api), api
    assert watch.urls and not [url for url in watch.urls if token in url]
    assert not [seen for seen in desk.requests if token in seen.url]


# ---- against the fake desk API ----


def test_the_token_form_and_a_refused_token(desk: FakeDeskApi, page: Page) -> None:
    """Nothing is asked before a token is given; a wrong one gets a clear message and the
    form again; the right one is kept for the tab (not in a cookie, not in localStorage)."""
    watch = PageWatch(page)
    watch.expected_statuses.add(401)
    page.goto(desk.base_url + "/desk")
    page.get_by_test_id("sign-in").wait_for()
    assert page.locator("#desk").is_hidden()
    assert connection(page) == "signed-out"
    page.wait_for_timeout(300)
    assert desk.requests == []  # no token, no request

    sign_in(page, "desk_not-anyones-token")
    message = page.get_by_test_id("sign-in-message")
    message.wait_for()
    assert "not accepted" in message.inner_text()
    assert "missing or unknown token" in message.inner_text()
    assert page.get_by_test_id("sign-in").is_visible()
    assert page.locator("#desk").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('electionDeskToken')") is None
    screenshot(page, "desk-sign-in-refused.png")

    sign_in(page, EDITOR_TOKEN)
    wait_live(page)
    assert page.get_by_test_id("sign-in").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('electionDeskToken')") == EDITOR_TOKEN
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""
    assert page.context.cookies() == []
    # A reload keeps the tab signed in, without asking again.
    page.reload()
    wait_live(page)
    assert page.get_by_test_id("sign-in").is_hidden()

    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("sign-in").wait_for()
    assert page.evaluate("() => sessionStorage.getItem('electionDeskToken')") is None
    assert page.locator("#desk").is_hidden()
    api = [seen for seen in desk.requests if "/api/desk/" in seen.url]
    assert [seen.authorization for seen in api[:1]] == ["Bearer desk_not-anyones-token"]
    assert all(seen.authorization == f"Bearer {EDITOR_TOKEN}" for seen in api[1:])
    assert not [url for url in watch.urls if "token" in url]
    assert watch.errors == []


def test_the_queue_renders_and_counts_down(desk: FakeDeskApi, page: Page) -> None:
    """Held alerts, oldest first, with what they are and why they wait; the countdown runs
    on the worker's clock; held calls, recent actions, conflicts and the REHEARSAL bar."""

    def skewed(d: FakeDeskApi) -> None:
        d.clock_skew = dt.timedelta(minutes=10)
        a_night(d)  # its times on the worker's clock
        now = dt.datetime.now(dt.UTC) + d.clock_skew
        d.held[2]["release_at"] = iso(now + dt.timedelta(seconds=95))

    desk.quietly(skewed)
    watch = open_desk(page, desk.base_url)
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])
    assert page.get_by_test_id("held-count").inner_text() == "3"

    truss = card(page, TRUSS["alert_id"])
    assert truss.get_by_test_id("held-headline").inner_text() == TRUSS["headline"]
    assert truss.get_by_test_id("held-body").inner_text() == TRUSS["body"]
    assert truss.get_attribute("data-priority") == "flash"
    assert truss.get_attribute("data-type") == "former_prime_minister_defeated"
    meta = truss.locator(".card__meta").inner_text()
    assert "Former prime minister defeated" in meta
    assert "South West Norfolk" in meta and SOUTH_WEST_NORFOLK in meta
    assert "Its type waits for an editor" in truss.inner_text()
    shapps = card(page, SHAPPS["alert_id"])
    assert "An editor holds this seat's call" in shapps.inner_text()
    assert "held 4 min" in shapps.inner_text()

    # No release time: it waits for an editor. A release time: a countdown on the worker's
    # clock (ten minutes ahead of the browser's here), that counts down.
    assert card(page, SUNAK["alert_id"]).get_by_test_id("countdown").inner_text() == (
        "Waits for an editor"
    )
    countdown = truss.get_by_test_id("countdown")
    first = int(countdown.get_attribute("data-seconds") or 0)
    assert 85 <= first <= 95, first
    assert re.fullmatch(r"Auto-release in 1:[23]\d", countdown.inner_text())
    page.wait_for_timeout(2_300)
    later = int(countdown.get_attribute("data-seconds") or 0)
    assert 2 <= first - later <= 3, (first, later)

    # The seat whose call is held, the actions, the conflict's figures side by side.
    call = page.get_by_test_id("held-call")
    assert call.count() == 1 and call.get_attribute("data-ons") == WELWYN_HATFIELD
    assert "Welwyn Hatfield" in call.inner_text() and "maria" in call.inner_text()
    assert "bundle count" in call.inner_text()
    actions = page.get_by_test_id("action")
    assert actions.count() == 2
    assert "auto-released" in actions.nth(1).inner_text()
    conflict = page.get_by_test_id("conflict")
    assert conflict.get_attribute("data-ons") == SOUTH_WEST_NORFOLK
    heads = conflict.locator("thead th").all_inner_texts()
    assert heads == ["Party", "pa r2", "replay r1"]
    rows = conflict.locator("tbody tr").all_inner_texts()
    assert [re.split(r"\s+", row.strip().replace("Terry Jermy (Lab)", "Jermy")) for row in rows][
        :2
    ] == [["Winner", "Jermy", "Jermy"], ["Majority", "630", "600"]]
    assert conflict.locator("tr[data-differs=true]").count() == 2  # majority, Truss's votes

    bar = page.get_by_test_id("mode-bar")
    assert bar.is_visible() and bar.get_attribute("data-mode") == "rehearsal"
    assert "REHEARSAL" in bar.inner_text()
    assert "repeating-linear-gradient" in bar.evaluate("b => getComputedStyle(b).backgroundImage")
    assert page.title().startswith("(3) [REHEARSAL]")
    screenshot(page, "desk-queue.png")

    # A live night says so, as loudly and differently.
    desk.change(lambda d: setattr(d, "mode", "live"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=mode-bar]').dataset.mode === 'live'"
    )
    assert page.get_by_test_id("mode-bar").inner_text().startswith("LIVE")
    assert watch.errors == []


def test_hostile_names_are_shown_as_text(desk: FakeDeskApi, page: Page) -> None:
    evil = alert(
        AlertType.SEAT_GAIN,
        AlertPriority.LOW,
        EVIL[:140],
        "E14001000",
        EVIL,
        body=EVIL,
        alert_id="evil:1",
    )

    def hostile(d: FakeDeskApi) -> None:
        d.held.append(held(evil, "policy"))
        d.calls_held.append(
            {
                "constituency_id": "E14001001",
                "constituency_name": EVIL,
                "by": EVIL,
                "at": iso(dt.datetime.now(dt.UTC)),
                "note": EVIL,
            }
        )
        d.actions.insert(
            0,
            {
                "action": "kill",
                "by": EVIL,
                "at": iso(dt.datetime.now(dt.UTC)),
                "headline": EVIL,
                "detail": EVIL,
            },
        )
        d.conflicts.append(
            {
                **CONFLICT,
                "constituency_name": EVIL,
                "sources": [{**s, "source": EVIL, "votes": {EVIL: 1}} for s in CONFLICT["sources"]],
            }
        )

    desk.quietly(hostile)
    watch = open_desk(page, desk.base_url)
    shown = card(page, "evil:1")
    shown.wait_for()
    assert shown.get_by_test_id("held-headline").inner_text() == EVIL[:140]
    assert shown.get_by_test_id("held-body").inner_text() == EVIL
    assert EVIL in shown.locator(".card__meta").inner_text()
    assert EVIL in page.locator("[data-testid=held-call][data-ons=E14001001]").inner_text()
    assert EVIL in page.get_by_test_id("action").first.inner_text()
    assert EVIL in page.get_by_test_id("conflict").last.inner_text()
    # Not one element made from the data: no img, no script outside the page's own.
    assert page.locator("#desk img, #desk script, #notice img").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert watch.errors == []


def test_approve_edit_and_kill_send_what_they_say(desk: FakeDeskApi, page: Page) -> None:
    """Each button POSTs the contract's request with the bearer header; the desk's new state
    comes over the event stream and the card goes; the token is in no URL."""
    watch = open_desk(page, desk.base_url)
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])

    # Approve: an empty body, and the buttons are disabled while it is in flight.
    truss = card(page, TRUSS["alert_id"])
    truss.get_by_test_id("approve").click()
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"]])
    [approve] = desk.posts()
    assert approve.path.endswith(f"/api/desk/alerts/{TRUSS['alert_id']}/approve")
    assert (approve.authorization, approve.body) == (f"Bearer {EDITOR_TOKEN}", {})
    first = page.get_by_test_id("action").first
    assert "ed" in first.inner_text() and "approved" in first.inner_text()
    assert TRUSS["headline"] in first.inner_text()

    # Edit: the form holds the alert as made; the headline is checked as the worker does.
    shapps = card(page, SHAPPS["alert_id"])
    shapps.get_by_test_id("edit").click()
    headline = shapps.get_by_test_id("edit-headline")
    assert headline.input_value() == SHAPPS["headline"]
    assert shapps.get_by_test_id("edit-body").input_value() == SHAPPS["body"]
    assert headline.get_attribute("maxlength") == "140"
    headline.fill("   ")
    shapps.get_by_test_id("send-edited").click()
    assert shapps.get_by_test_id("card-error").inner_text() == "The headline cannot be empty"
    new_headline = "Grant Shapps, the Defence Secretary, loses Welwyn Hatfield to Labour"
    headline.fill(new_headline)
    assert shapps.locator(".card__chars").inner_text() == f"{len(new_headline)}/140"
    # A state pushed while the editor types leaves the form as it is.
    desk.change(
        lambda d: d.actions.insert(
            0,
            {
                "action": "approve",
                "by": "maria",
                "at": iso(dt.datetime.now(dt.UTC)),
                "headline": "Something else",
            },
        )
    )
    page.wait_for_function("() => document.querySelectorAll('[data-testid=action]').length === 4")
    assert headline.input_value() == new_headline
    screenshot(page, "desk-edit.png")
    # Held in the browser until the test lets it go: the buttons are disabled meanwhile.
    paused: list[Route] = []
    page.route("**/api/desk/alerts/**", lambda route: paused.append(route))
    shapps.get_by_test_id("send-edited").click()
    while not paused:
        page.wait_for_timeout(20)
    assert shapps.get_by_test_id("send-edited").is_disabled()
    assert shapps.get_by_test_id("edit-cancel").is_disabled()
    assert shapps.get_attribute("data-busy") == "true"
    paused[0].continue_()
    wait_held(page, [SUNAK["alert_id"]])
    page.unroute("**/api/desk/alerts/**")
    edit = desk.posts()[-1]
    assert edit.path.endswith(f"/api/desk/alerts/{SHAPPS['alert_id']}/approve")
    assert edit.body == {"headline": new_headline}  # the body was not changed: not sent
    first = page.get_by_test_id("action").first
    assert "edited and sent" in first.inner_text() and new_headline in first.inner_text()
    assert f"was: {SHAPPS['headline']}" in first.inner_text()

    # Kill, with a reason.
    sunak = card(page, SUNAK["alert_id"])
    sunak.get_by_test_id("kill").click()
    sunak.get_by_test_id("kill-reason").fill("Wrong majority: PA is re-checking")
    sunak.get_by_test_id("kill-confirm").click()
    wait_held(page, [])
    kill = desk.posts()[-1]
    assert kill.path.endswith(f"/api/desk/alerts/{SUNAK['alert_id']}/kill")
    assert kill.body == {"reason": "Wrong majority: PA is re-checking"}
    assert page.get_by_test_id("held-empty").is_visible()
    assert page.get_by_test_id("held-count").inner_text() == "0"
    assert "killed" in page.get_by_test_id("action").first.inner_text()
    assert page.get_by_test_id("notice").is_hidden()  # the editor's own decisions: no notice
    screenshot(page, "desk-after.png")

    assert [p.path.rsplit("/", 1)[-1] for p in desk.posts()] == ["approve", "approve", "kill"]
    assert_token_only_in_headers(desk, watch, EDITOR_TOKEN)
    assert watch.errors == []


def test_a_decision_taken_elsewhere_says_who(desk: FakeDeskApi, page: Page) -> None:
    """409: another editor decided it first, and the page says who and when; a 404 says it
    is no longer on the desk; a card someone else decides while this editor edits it goes,
    with a notice of who did."""
    watch = open_desk(page, desk.base_url)
    watch.expected_statuses.update({404, 409})
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])
    at = dt.datetime(2024, 7, 5, 6, 1, 2, tzinfo=dt.UTC)

    # Maria killed Sunak's on another worker; this page has not heard yet.
    desk.quietly(
        lambda d: d.decided.update(
            {SUNAK["alert_id"]: {"action": "kill", "by": "maria", "at": iso(at)}}
        )
    )
    sunak = card(page, SUNAK["alert_id"])
    sunak.get_by_test_id("approve").click()
    error = sunak.get_by_test_id("card-error")
    error.wait_for()
    assert error.inner_text() == "Already decided: killed by maria at 07:01:02"
    assert sunak.get_by_test_id("approve").is_enabled()  # the answer came: free again
    screenshot(page, "desk-already-decided.png")

    # Gone from the desk without a decision anyone knows of: 404.
    desk.quietly(lambda d: d.held.remove(d.held[1]))
    card(page, SHAPPS["alert_id"]).get_by_test_id("kill").click()
    card(page, SHAPPS["alert_id"]).get_by_test_id("kill-confirm").click()
    card(page, SHAPPS["alert_id"]).get_by_test_id("card-error").wait_for()
    assert "No longer on the desk" in card(page, SHAPPS["alert_id"]).inner_text()

    # Truss's is decided by someone else while this editor has it open to edit.
    truss = card(page, TRUSS["alert_id"])
    truss.get_by_test_id("edit").click()

    def someone_approves(d: FakeDeskApi) -> None:
        d.held = [h for h in d.held if h["alert"]["alert_id"] != TRUSS["alert_id"]]
        d.actions.insert(
            0,
            {
                "action": "approve",
                "by": "maria",
                "at": iso(at),
                "alert_id": TRUSS["alert_id"],
                "headline": TRUSS["headline"],
            },
        )

    desk.change(someone_approves)
    truss.wait_for(state="detached")
    notice = page.get_by_test_id("notice")
    notice.wait_for()
    assert "approved by maria at 07:01:02" in notice.inner_text()
    assert TRUSS["headline"] in notice.inner_text()
    assert watch.errors == []


def test_pushed_states_and_reconnecting(desk: FakeDeskApi, page: Page) -> None:
    """A new state on the stream re-renders the desk; heartbeats change nothing; a stream
    that ends shows "reconnecting", and the page comes back and catches up."""
    watch = open_desk(page, desk.base_url)
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])
    version = page.evaluate("() => window.electionDesk.model.state.version")
    page.wait_for_timeout(1_500)  # three heartbeats
    assert page.evaluate("() => window.electionDesk.model.state.version") == version

    gain = alert(
        AlertType.SEAT_GAIN,
        AlertPriority.LOW,
        "Hendon: Labour hold",
        "E14001283",
        "Hendon",
        alert_id="seat_gain:E14001283:2",
    )
    desk.change(lambda d: d.held.append(held(gain, "amends_held")))
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"], gain["alert_id"]])
    assert "It amends an alert still on the desk" in card(page, gain["alert_id"]).inner_text()
    assert page.get_by_test_id("held-count").inner_text() == "4"

    desk.hang_up()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=connection]').dataset.status === 'reconnecting'"
    )
    assert "Reconnecting" in page.get_by_test_id("connection").inner_text()
    screenshot(page, "desk-reconnecting.png")
    # Changed while the page was away: the first event after reconnecting has it.
    desk.change(lambda d: d.held.pop(0))
    wait_held(page, [SHAPPS["alert_id"], TRUSS["alert_id"], gain["alert_id"]])
    wait_live(page)
    assert watch.errors == []


def test_holding_a_call_and_letting_it_go(desk: FakeDeskApi, page: Page) -> None:
    watch = open_desk(page, desk.base_url)
    watch.expected_statuses.add(404)
    form = page.get_by_test_id("hold-call-form")
    form.get_by_test_id("hold-call-ons").fill("e14001290")
    form.get_by_test_id("hold-call-note").fill("Starmer's count: wait for the returning officer")
    form.get_by_test_id("hold-call-submit").click()
    page.locator("[data-testid=held-call][data-ons=E14001290]").wait_for()
    hold = desk.posts()[-1]
    assert hold.path.endswith("/api/desk/seats/E14001290/call")
    assert hold.body == {"hold": True, "note": "Starmer's count: wait for the returning officer"}
    assert "Holborn and St Pancras" in page.locator("[data-ons=E14001290]").inner_text()
    assert form.get_by_test_id("hold-call-ons").input_value() == ""

    form.get_by_test_id("hold-call-ons").fill("E99999999")
    form.get_by_test_id("hold-call-submit").click()
    error = form.get_by_test_id("hold-call-error")
    error.wait_for()
    assert error.inner_text() == "no constituency E99999999"

    page.locator("[data-testid=held-call][data-ons=E14001290]").get_by_test_id(
        "release-call"
    ).click()
    page.locator("[data-testid=held-call][data-ons=E14001290]").wait_for(state="detached")
    assert desk.posts()[-1].body == {"hold": False}
    assert "call let go" in page.get_by_test_id("action").first.inner_text()
    assert_token_only_in_headers(desk, watch, EDITOR_TOKEN)
    assert watch.errors == []


def test_a_viewer_is_told_and_offered_the_form(desk: FakeDeskApi, page: Page) -> None:
    """403: a viewer's token may watch, not decide; the page says so, offers the form, and
    keeps showing the desk."""
    watch = open_desk(page, desk.base_url, VIEWER_TOKEN)
    watch.expected_statuses.add(403)
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])
    card(page, TRUSS["alert_id"]).get_by_test_id("approve").click()
    message = page.get_by_test_id("sign-in-message")
    message.wait_for()
    assert "vera is a viewer: this needs editor" in message.inner_text()
    assert page.get_by_test_id("sign-in").is_visible() and page.locator("#desk").is_visible()
    assert card(page, TRUSS["alert_id"]).get_by_test_id("approve").is_enabled()
    screenshot(page, "desk-viewer-refused.png")

    # An editor's token from the same form: the decision goes through.
    sign_in(page, EDITOR_TOKEN)
    wait_live(page)
    card(page, TRUSS["alert_id"]).get_by_test_id("approve").click()
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"]])
    assert [(p.authorization, p.path.rsplit("/", 1)[-1]) for p in desk.posts()] == [
        (f"Bearer {VIEWER_TOKEN}", "approve"),
        (f"Bearer {EDITOR_TOKEN}", "approve"),
    ]
    assert watch.errors == []


def test_a_token_revoked_mid_night_brings_the_form_back(desk: FakeDeskApi, page: Page) -> None:
    watch = open_desk(page, desk.base_url)
    watch.expected_statuses.add(401)
    wait_held(page, [SUNAK["alert_id"], SHAPPS["alert_id"], TRUSS["alert_id"]])
    desk.quietly(lambda d: d.people.pop(EDITOR_TOKEN))
    card(page, TRUSS["alert_id"]).get_by_test_id("approve").click()
    message = page.get_by_test_id("sign-in-message")
    message.wait_for()
    assert "not accepted" in message.inner_text()
    assert page.locator("#desk").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('electionDeskToken')") is None
    assert connection(page) == "signed-out"
    page.wait_for_timeout(1_000)
    assert desk.clients() == 0  # the stream was closed with the session
    assert watch.errors == []


# ---- against a real worker during a replay ----


def _alerts_on_topic(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [json.loads(value) for _, value, _ in pipeline.read("alerts")]


def _until(what: str, holds: Callable[[], bool], timeout: float, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while not holds():
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(f"worker exited while waiting for {what}:\n{worker.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s")
        time.sleep(0.5)


def held_card(page: Page, kind: AlertType, ons_id: str) -> Locator:
    return page.locator(f"[data-testid=held-alert][data-type={kind.value}][data-ons={ons_id}]")


class WebhookReceiver:
    """A newsroom's webhook endpoint on its own thread: the alert ids it verified, in order."""

    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.received: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                alert = receiver.hook.verify(body, headers)
                receiver.received.append(alert["alert_id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    secret = new_secret()
    receiver = WebhookReceiver(secret)
    try:
        yield receiver, secret
    finally:
        receiver.close()


def test_the_desk_page_decides_held_alerts_of_a_real_night(
    pipeline: Pipeline, page: Page, webhook_receiver: tuple[WebhookReceiver, str]
) -> None:
    """A rehearsal worker holds the night's people-of-note flashes (no auto-release); through
    the page an editor holds a cabinet minister's seat's call, then approves Truss's defeat
    (on the alerts topic once), kills Sunak's result (never on it), edits Shapps's defeat (on
    it once, edited), and lets the call go; every other alert of the night goes out."""
    receiver, secret = webhook_receiver
    env = {
        **pipeline.env(),
        "ELECTION_DESK_AUTO_RELEASE_S": "0",
        # A newsroom that takes the rehearsal's alerts by webhook, as the app team would.
        "ELECTION_WEBHOOK_REHEARSAL_URLS": orjson.dumps([receiver.url]).decode(),
        "ELECTION_WEBHOOK_SECRETS": orjson.dumps([secret]).decode(),
    }
    editor = give_token(env, "ed", "editor")
    worker = WorkerProcess("streams.worker:app", env, name="desk-page")
    with worker:
        worker.wait_for_log("Ready", timeout=120)
        watch = open_desk(page, worker.base_url, editor)
        bar = page.get_by_test_id("mode-bar")
        assert bar.get_attribute("data-mode") == "rehearsal" and "REHEARSAL" in bar.inner_text()
        assert page.get_by_test_id("held-count").inner_text() == "0"

        # Before the night: do not call Welwyn Hatfield (its alerts wait on the desk).
        form = page.get_by_test_id("hold-call-form")
        form.get_by_test_id("hold-call-ons").fill(WELWYN_HATFIELD)
        form.get_by_test_id("hold-call-note").fill("Shapps's agent asked for a bundle check")
        form.get_by_test_id("hold-call-submit").click()
        call = page.locator(f"[data-testid=held-call][data-ons={WELWYN_HATFIELD}]")
        call.wait_for(timeout=15_000)
        assert "Welwyn Hatfield" in call.inner_text() and "ed" in call.inner_text()
        screenshot(page, "desk-worker-call-held.png")

        pipeline.send(build_outgoing(DATA_DIR))  # the whole night, as fast as it goes

        truss = held_card(page, AlertType.FORMER_PRIME_MINISTER_DEFEATED, SOUTH_WEST_NORFOLK)
        sunak = held_card(page, AlertType.PRIME_MINISTER_RESULT, RICHMOND)
        shapps = held_card(page, AlertType.CABINET_MINISTER_DEFEATED, WELWYN_HATFIELD)
        gain = held_card(page, AlertType.SEAT_GAIN, WELWYN_HATFIELD)
        for held_alert in (truss, sunak, shapps, gain):
            held_alert.wait_for(timeout=240_000)
        assert "Liz Truss" in truss.get_by_test_id("held-headline").inner_text()
        assert truss.get_attribute("data-priority") == "flash"
        assert truss.get_attribute("data-reason") == "policy"
        assert shapps.get_attribute("data-reason") == "seat_not_called"
        # ELECTION_DESK_AUTO_RELEASE_S=0: nothing goes by itself.
        assert truss.get_by_test_id("countdown").inner_text() == "Waits for an editor"
        truss_id = truss.get_attribute("data-alert-id") or ""
        sunak_id = sunak.get_attribute("data-alert-id") or ""
        shapps_id = shapps.get_attribute("data-alert-id") or ""
        gain_id = gain.get_attribute("data-alert-id") or ""
        screenshot(page, "desk-worker-queue.png")

        # Nothing held is on the alerts topic while it is held; the rest of the night is.
        expected = set(clean_night_alert_ids())
        held_ids_now = {truss_id, sunak_id, shapps_id, gain_id}
        assert held_ids_now <= expected
        _until(
            "the night's unheld alerts on the alerts topic",
            lambda: expected - held_ids_now <= {a["alert_id"] for a in _alerts_on_topic(pipeline)},
            180,
            worker,
        )
        assert not held_ids_now & {a["alert_id"] for a in _alerts_on_topic(pipeline)}

        truss.get_by_test_id("approve").click()
        truss.wait_for(state="detached", timeout=30_000)
        assert "approved" in page.get_by_test_id("action").first.inner_text()
        screenshot(page, "desk-worker-approved.png")

        sunak.get_by_test_id("kill").click()
        sunak.get_by_test_id("kill-reason").fill("Rehearsal: the kill drill")
        sunak.get_by_test_id("kill-confirm").click()
        sunak.wait_for(state="detached", timeout=30_000)
        assert "killed" in page.get_by_test_id("action").first.inner_text()
        screenshot(page, "desk-worker-killed.png")

        edited = "Grant Shapps, the Defence Secretary, loses Welwyn Hatfield to Labour's Lewin"
        shapps.get_by_test_id("edit").click()
        shapps.get_by_test_id("edit-headline").fill(edited)
        screenshot(page, "desk-worker-edit.png")
        shapps.get_by_test_id("send-edited").click()
        shapps.wait_for(state="detached", timeout=30_000)
        assert "edited and sent" in page.get_by_test_id("action").first.inner_text()

        call.get_by_test_id("release-call").click()
        call.wait_for(state="detached", timeout=30_000)
        # What the call held stays on the desk when the call goes: an editor sends it.
        page.wait_for_timeout(2_000)
        assert gain.count() == 1
        gain.get_by_test_id("approve").click()
        gain.wait_for(state="detached", timeout=30_000)
        screenshot(page, "desk-worker-after.png")

        sent = {truss_id, shapps_id, gain_id}
        _until(
            "the approved and edited alerts on the alerts topic",
            lambda: sent <= {a["alert_id"] for a in _alerts_on_topic(pipeline)},
            60,
            worker,
        )
        page.wait_for_timeout(3_000)  # time for a duplicate to show, were there one
        alerts = _alerts_on_topic(pipeline)
        counts = Counter(a["alert_id"] for a in alerts)
        assert counts[truss_id] == 1 and counts[shapps_id] == 1 and counts[gain_id] == 1
        assert counts[sunak_id] == 0  # killed: never sent
        assert [i for i, n in counts.items() if n > 1] == []
        assert set(counts) == expected - {sunak_id}
        [truss_sent] = [a for a in alerts if a["alert_id"] == truss_id]
        assert truss_sent["type"] == "former_prime_minister_defeated"
        assert truss_sent["rehearsal"] is True and "Liz Truss" in truss_sent["headline"]
        [shapps_sent] = [a for a in alerts if a["alert_id"] == shapps_id]
        assert shapps_sent["headline"] == edited
        assert page.get_by_test_id("held-count").inner_text() == "0"
        # The webhook receiver: what the desk sent, once; what it killed, never.
        _until(
            "the approved and edited alerts at the webhook receiver",
            lambda: sent <= set(receiver.received),
            60,
            worker,
        )
        page.wait_for_timeout(2_000)  # time for a second delivery to show, were there one
        delivered = Counter(receiver.received)
        assert [delivered[alert_id] for alert_id in (truss_id, shapps_id, gain_id)] == [1, 1, 1]
        assert delivered[sunak_id] == 0
        assert not [url for url in watch.urls if editor in url]
        assert watch.errors == []
        worker_log = worker.log()
    assert editor not in worker_log


def test_an_editor_puts_one_sources_figures_on_air(desk: FakeDeskApi, page: Page) -> None:
    """Where two sources disagree, a button per source sends the choice, with the token."""
    desk.quietly(a_night)
    watch = open_desk(page, desk.base_url)
    conflict = page.locator(f"[data-testid=conflict][data-ons={SOUTH_WEST_NORFOLK}]")
    conflict.wait_for()
    buttons = conflict.get_by_test_id("choose-source")
    assert [buttons.nth(i).get_attribute("data-source") for i in range(buttons.count())] == [
        "pa",
        "replay",
    ]
    conflict.locator("[data-testid=choose-source][data-source=replay]").click()
    conflict.wait_for(state="detached")  # the sources agree: the conflict leaves the desk
    [choice] = [seen for seen in desk.posts() if seen.path.endswith("/choose")]
    assert choice.path == f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/choose"
    assert choice.body == {"source": "replay"}
    assert choice.authorization == f"Bearer {EDITOR_TOKEN}"
    assert page.get_by_test_id("conflicts-count").inner_text() == "0"
    assert_token_only_in_headers(desk, watch, EDITOR_TOKEN)
    assert watch.errors == []
