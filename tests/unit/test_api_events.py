"""The event streams: a quiet spell longer than redis-py's read timeout must not cut them."""

from __future__ import annotations

from typing import Any
from unittest import mock

import fakeredis
import pytest
from aiohttp.test_utils import make_mocked_request

import streams.web.api
from streams.pipeline.context import WorkerContext
from streams.settings import Settings
from streams.web.api import HEARTBEAT_S, stream_events


async def test_the_blocking_read_waits_longer_than_the_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # redis-py 8 reads with a 5 s socket timeout by default: a blocking XREAD of 15 s on a
    # quiet night then fails and the page's stream breaks every 5 s.
    made: list[dict[str, Any]] = []

    def client(settings: Any, url: str | None = None, **kwargs: Any) -> Any:
        made.append(kwargs)
        return fakeredis.FakeAsyncRedis()

    monkeypatch.setattr(streams.web.api, "redis_from_settings", client)
    writer = mock.Mock()
    writer.write_headers = mock.AsyncMock()
    # The client hangs up at once, after the headers and the retry line are sent.
    writer.write = mock.AsyncMock(side_effect=ConnectionResetError)
    request = make_mocked_request("GET", "/api/events", writer=writer)
    context = WorkerContext(Settings())
    await stream_events(context, request, topics={"alerts"})  # type: ignore[arg-type]
    assert len(made) == 1
    assert made[0]["socket_timeout"] > HEARTBEAT_S
