"""HTTP API for graphics: state of the parties, seats, declarations, alerts, and live events."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View

from streams.app import app
from streams.connections import redis_from_settings
from streams.outbox import Outbox, QueuedOutput
from streams.resources import election_namespace, redis_client, register
from streams.settings import get_settings
from streams.tally_store import TallyStore

settings = get_settings()

# SSE event names by outbox topic: what a graphics engine subscribes to.
EVENT_NAMES = {"results": "result", "state": "state", "alerts": "alert"}
HEARTBEAT_S = 15.0


def _store() -> TallyStore:
    return TallyStore(redis_client(), settings.election_id, settings.redis_key_prefix)


def _outbox() -> Outbox:
    return Outbox(redis_client(), election_namespace())


def _cors(response: Any) -> Any:
    origin = settings.cors_allow_origin
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def json_with_etag(view: View, request: Request, body: bytes) -> Response:
    """Polled endpoints answer 304 when nothing changed, so a poller costs almost nothing."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("If-None-Match") == etag:
        response = aiohttp_web.Response(status=304, headers={"ETag": etag})
    else:
        response = aiohttp_web.Response(
            body=body,
            content_type="application/json",
            headers={"ETag": etag, "Cache-Control": "no-cache"},
        )
    return _cors(response)


@app.page("/api/state")
class StateView(View):
    """The state of the parties now: seats, change, votes, share, seats declared."""

    async def get(self, request: Request) -> Response:
        state = await _store().state(register())
        return json_with_etag(self, request, state.model_dump_json().encode())


@app.page("/api/seats")
class SeatsView(View):
    """Every declared seat's latest result, keyed by ONS id."""

    async def get(self, request: Request) -> Response:
        seats = await _store().seats()
        body = orjson.dumps({ons: seat.model_dump(mode="json") for ons, seat in seats.items()})
        return json_with_etag(self, request, body)


@app.page("/api/seats/{ons_id}")
class SeatView(View):
    """One constituency's result with every candidate."""

    async def get(self, request: Request, ons_id: str) -> Response:
        if register().constituency(ons_id) is None:
            return _cors(self.json({"error": f"no constituency {ons_id}"}, status=404))
        seat = await _store().seat(ons_id)
        if seat is None:
            return _cors(self.json({"error": f"{ons_id} has not declared"}, status=404))
        return json_with_etag(self, request, seat.model_dump_json().encode())


@app.page("/api/declarations")
class LatestDeclarationsView(View):
    """The latest declarations, newest first (?limit=N, default 20)."""

    async def get(self, request: Request) -> Response:
        limit = _int_param(request, "limit", 20, upper=650)
        seats = await _store().seats()
        latest = sorted(seats.values(), key=lambda s: (s.declared_at, s.sequence), reverse=True)[
            :limit
        ]
        body = orjson.dumps([seat.model_dump(mode="json") for seat in latest])
        return json_with_etag(self, request, body)


@app.page("/api/alerts")
class AlertsView(View):
    """Alerts so far, oldest first (?after=<outbox sequence> for the ones since)."""

    async def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0)
        alerts = []
        async for item in _all_after(_outbox(), after):
            if item.output.topic == "alerts":
                # The stored alert has no position yet (sequence null): set it after the spread.
                alerts.append({**orjson.loads(item.output.value), "sequence": item.sequence})
        return json_with_etag(self, request, orjson.dumps(alerts))


@app.page("/api/events")
class EventsView(View):
    """Server-sent events of every change (result, state, alert); resumes from Last-Event-ID."""

    async def get(self, request: Request) -> Any:
        return await stream_events(request, topics=set(EVENT_NAMES))


@app.page("/api/alerts/events")
class AlertEventsView(View):
    """Server-sent events of alerts only; resumes from Last-Event-ID."""

    async def get(self, request: Request) -> Any:
        return await stream_events(request, topics={"alerts"})


def _int_param(request: Request, name: str, default: int, upper: int | None = None) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        value = default
    value = max(value, 0)
    return min(value, upper) if upper is not None else value


async def _all_after(outbox: Outbox, after: int) -> Any:
    while True:
        batch = await outbox.read(after=after, count=1000)
        if not batch:
            return
        for item in batch:
            yield item
        after = batch[-1].sequence


def _sse_frame(item: QueuedOutput) -> bytes:
    event = EVENT_NAMES[item.output.topic]
    data = item.output.value.replace(b"\n", b" ")
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (item.sequence, event.encode(), data)


async def stream_events(request: Request, topics: set[str]) -> aiohttp_web.StreamResponse:
    last_id = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = max(int(last_id), 0)
    except ValueError:
        after = 0
    response = aiohttp_web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    _cors(response)
    await response.prepare(request)  # type: ignore[arg-type]
    # A blocking XREAD holds its connection, so each client gets its own.
    blocking = redis_from_settings(settings)
    outbox = Outbox(blocking, election_namespace())
    try:
        await response.write(b"retry: 1000\n\n")
        while True:
            items = await outbox.wait_for(after, block_ms=int(HEARTBEAT_S * 1000))
            if not items:
                await response.write(b": keep-alive\n\n")
                continue
            for item in items:
                if item.output.topic in topics:
                    await response.write(_sse_frame(item))
            after = items[-1].sequence
    except ConnectionResetError:
        pass  # the client went away; nothing to clean up but the connection
    finally:
        await blocking.aclose()
    return response
