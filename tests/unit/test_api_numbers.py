"""Numbers from outside (query parameters, Last-Event-ID) never make a 500, and every answer
carries the same hardened headers."""

from __future__ import annotations

from typing import Any
from unittest import mock

import fakeredis
import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb

import streams.web.api
from scripts.state_view import worker_url
from streams.pipeline.app import create_app
from streams.pipeline.context import WorkerContext
from streams.settings import Settings
from streams.store.outbox import Outbox, Output
from streams.web import SERVER_NAME
from streams.web.api import LARGEST_SEQUENCE, stream_events
from tests.unit.test_live_page import app, get

LIVE_ALERT = b'{"alert_id": "a1", "rehearsal": false}'
TOO_LARGE = ["99999999999999999999999999", str(2**64), str(LARGEST_SEQUENCE + 1)]


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box = Outbox(fakeredis.FakeAsyncRedis(), app.context.namespace)
    monkeypatch.setattr(app.context, "outbox", box)
    return box


@pytest.mark.parametrize("after", TOO_LARGE)
async def test_an_alerts_position_past_any_sequence_is_a_400(outbox: Outbox, after: str) -> None:
    response = await get(f"/api/alerts?after={after}")
    assert response.status == 400
    assert b"outbox sequence" in response.body


async def test_the_largest_position_allowed_is_answered(outbox: Outbox) -> None:
    await outbox.announce_many([(1, [Output("a1", "alerts", "a1", LIVE_ALERT)])])
    response = await get(f"/api/alerts?after={LARGEST_SEQUENCE}")
    assert response.status == 200 and response.body == b"[]"


@pytest.mark.parametrize("last_id", [*TOO_LARGE, "-5", "abc"])
async def test_an_event_stream_resumed_from_an_impossible_id_starts_from_the_beginning(
    monkeypatch: pytest.MonkeyPatch, last_id: str
) -> None:
    server = fakeredis.FakeServer()
    context = WorkerContext(Settings())
    outbox = Outbox(fakeredis.FakeAsyncRedis(server=server), context.namespace)
    await outbox.announce_many([(1, [Output("a1", "alerts", "a1", LIVE_ALERT)])])
    await outbox.mark_published(1)  # streams carry only what is on Kafka

    def client(settings: Any, url: str | None = None, **kwargs: Any) -> Any:
        return fakeredis.FakeAsyncRedis(server=server)

    monkeypatch.setattr(streams.web.api, "redis_from_settings", client)
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(bytes(data))
        if b"id: " in data:
            raise ConnectionResetError  # the client leaves once it has its first event

    writer = mock.Mock()
    writer.write_headers = mock.AsyncMock()
    writer.write = mock.AsyncMock(side_effect=write)
    request = make_mocked_request(
        "GET", "/api/alerts/events", headers={"Last-Event-ID": last_id}, writer=writer
    )
    await stream_events(context, request, topics={"alerts"})  # type: ignore[arg-type]
    assert any(frame.startswith(b"id: 1\nevent: alert\n") for frame in written), written


async def test_every_answer_says_nosniff_and_names_no_versions() -> None:
    made = create_app(Settings())
    web = made.web
    assert isinstance(web, AiohttpWeb)
    async with TestClient(TestServer(web.web_app)) as client:
        for path in ("/live", "/static/nothing-here"):
            response = await client.get(path)
            assert response.headers["X-Content-Type-Options"] == "nosniff", path
            assert response.headers["Server"] == SERVER_NAME, path


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 6066, "http://127.0.0.1:6066"),
        ("0.0.0.0", 7001, "http://127.0.0.1:7001"),
        ("10.1.2.3", 7002, "http://10.1.2.3:7002"),
        ("::1", 7003, "http://[::1]:7003"),
    ],
)
def test_election_state_finds_the_worker_where_the_settings_put_it(
    host: str, port: int, url: str
) -> None:
    assert worker_url(Settings(web_host=host, web_port=port)) == url
