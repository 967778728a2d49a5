"""HTTP API for graphics: state of the parties, seats, declarations, alerts, and live events."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View

from schemas.results import SeatResult
from streams.connections import redis_from_settings
from streams.pipeline.context import WorkerContext, context_of
from streams.store.outbox import Outbox, QueuedOutput

# SSE event names by outbox topic: what a graphics engine subscribes to.
EVENT_NAMES = {"results": "result", "state": "state", "alerts": "alert"}
HEARTBEAT_S = 15.0
SOCKET_SLACK_S = 10.0  # how much longer than a blocking read its socket waits for the answer
# The largest outbox sequence a client may name: Redis reads stream ids as 64-bit numbers and
# answers "Invalid stream ID" past them, and no night comes near this.
LARGEST_SEQUENCE = 2**63 - 1


def _cors(response: Any, context: WorkerContext) -> Any:
    origin = context.settings.cors_allow_origin
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
    return _cors(response, context_of(view.app))


class StateView(View):
    """The state of the parties now: seats, change, votes, share, seats declared."""

    async def get(self, request: Request) -> Response:
        context = context_of(self.app)
        state = await context.store.state(context.register)
        return json_with_etag(self, request, state.model_dump_json().encode())


class SeatsView(View):
    """Every declared seat's latest result, keyed by ONS id."""

    async def get(self, request: Request) -> Response:
        seats = await context_of(self.app).store.seats()
        body = orjson.dumps({ons: seat.model_dump(mode="json") for ons, seat in seats.items()})
        return json_with_etag(self, request, body)


class SeatView(View):
    """One constituency's result with every candidate."""

    async def get(self, request: Request, ons_id: str) -> Response:
        context = context_of(self.app)
        if context.register.constituency(ons_id) is None:
            return _cors(self.json({"error": f"no constituency {ons_id}"}, status=404), context)
        seat = await context.store.seat(ons_id)
        if seat is None:
            return _cors(self.json({"error": f"{ons_id} has not declared"}, status=404), context)
        return json_with_etag(self, request, seat.model_dump_json().encode())


def latest_declarations(seats: Iterable[SeatResult], limit: int) -> list[SeatResult]:
    """Seats by declaration time, newest first, whatever order their messages arrived in.

    The night's order reversed: the night takes seats by `declared_at`, then constituency
    name, then ONS id (seats declared in the same minute: the order the replay sends them
    in, and how the publisher tells first and last), and this list is latest first, so of
    two seats declared at the same moment the one later by name comes first. The live
    page's ticker sorts the same way.
    """
    return sorted(
        seats,
        key=lambda seat: (seat.declared_at, seat.constituency_name, seat.constituency_id),
        reverse=True,
    )[:limit]


def alerts_by_time(items: Iterable[QueuedOutput]) -> list[dict[str, Any]]:
    """The alerts among queued outputs, by the time of what they tell, oldest first.

    Ordered by `occurred_at` (the declaration's time; the exit poll's publication), then by
    outbox `sequence` among alerts of the same moment. Each carries its `sequence`.
    """
    alerts = [
        # The stored alert has no position yet (sequence null): set it after the spread.
        {**orjson.loads(item.output.value), "sequence": item.sequence}
        for item in items
        if item.output.topic == "alerts"
    ]
    return sorted(alerts, key=lambda alert: (_instant(alert.get("occurred_at")), alert["sequence"]))


def _instant(value: Any) -> dt.datetime:
    """An ISO time as an aware datetime; none or an unreadable one sorts before any other."""
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return _EARLIEST
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


class LatestDeclarationsView(View):
    """The latest declarations by declaration time, newest first (?limit=N, default 20).

    Ordered by (`declared_at`, constituency name, ONS id), latest first.
    """

    async def get(self, request: Request) -> Response:
        limit = _int_param(request, "limit", 20, upper=650)
        seats = await context_of(self.app).store.seats()
        latest = latest_declarations(seats.values(), limit)
        body = orjson.dumps([seat.model_dump(mode="json") for seat in latest])
        return json_with_etag(self, request, body)


class AlertsView(View):
    """Alerts so far by the time of what they tell, oldest first.

    Ordered by `occurred_at`, then outbox `sequence`. `?after=<outbox sequence>` gives only
    the alerts queued after that position, in the same order: resume from the largest
    `sequence` seen, which need not be the last alert's.
    """

    async def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0)
        if after > LARGEST_SEQUENCE:
            error = {"error": f"after must be an outbox sequence from 0 to {LARGEST_SEQUENCE}"}
            return _cors(self.json(error, status=400), context_of(self.app))
        queued = [
            item
            async for item in _all_after(context_of(self.app).outbox, after)
            if item.output.topic == "alerts"
        ]
        alerts = alerts_by_time(queued)
        return json_with_etag(self, request, orjson.dumps(alerts))


class EventsView(View):
    """Server-sent events of every change (result, state, alert); resumes from Last-Event-ID."""

    async def get(self, request: Request) -> Any:
        return await stream_events(context_of(self.app), request, topics=set(EVENT_NAMES))


class AlertEventsView(View):
    """Server-sent events of alerts only; resumes from Last-Event-ID."""

    async def get(self, request: Request) -> Any:
        return await stream_events(context_of(self.app), request, topics={"alerts"})


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


async def stream_events(
    context: WorkerContext, request: Request, topics: set[str]
) -> aiohttp_web.StreamResponse:
    last_id = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = max(int(last_id), 0)
    except ValueError:
        after = 0
    if after > LARGEST_SEQUENCE:
        # No sequence this large was ever sent: resume from the start rather than fail, which
        # a browser would answer by reconnecting with the same id for ever.
        after = 0
    response = aiohttp_web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    _cors(response, context)
    await response.prepare(request)  # type: ignore[arg-type]
    # A blocking XREAD holds its connection, so each client gets its own, with a read timeout
    # past the block: redis-py's default (5 s in redis-py 8) would cut a quiet stream.
    blocking = redis_from_settings(context.settings, socket_timeout=HEARTBEAT_S + SOCKET_SLACK_S)
    outbox = Outbox(blocking, context.namespace)
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


ROUTES: dict[str, type[View]] = {
    "/api/state": StateView,
    "/api/seats": SeatsView,
    "/api/seats/{ons_id}": SeatView,
    "/api/declarations": LatestDeclarationsView,
    "/api/alerts": AlertsView,
    "/api/events": EventsView,
    "/api/alerts/events": AlertEventsView,
}
