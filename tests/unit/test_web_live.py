"""The liveness view answers from the process alone: 200 while it works, 503 once crashed."""

from __future__ import annotations

import json

import pytest

from streams.pipeline.app import create_app
from streams.settings import Settings, get_settings
from tests.unit.test_live_page import get

app = create_app(Settings())


async def test_live_answers_without_kafka_or_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing answers on these: /live must not care, unlike /health.
    monkeypatch.setattr("streams.web.health._kafka_answers", _fail)
    monkeypatch.setattr("streams.web.health._redis_answers", _fail)
    response = await get("/live")
    assert response.status == 200
    assert json.loads(response.body) == {"alive": True, "election_id": get_settings().election_id}


async def test_live_fails_once_the_app_has_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(app), "crashed", property(lambda self: True))
    response = await get("/live")
    assert response.status == 503
    assert json.loads(response.body)["alive"] is False


async def test_health_still_reports_an_outage_as_503(monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(context: object) -> str:
        return "ConnectionError: refused"

    async def up(context: object) -> None:
        return None

    monkeypatch.setattr("streams.web.health._kafka_answers", down)
    monkeypatch.setattr("streams.web.health._redis_answers", up)
    response = await get("/health")
    assert response.status == 503
    assert json.loads(response.body)["kafka"] == {"ok": False, "error": "ConnectionError: refused"}


async def _fail(context: object) -> str:
    raise AssertionError("/live must not check Kafka or Redis")
