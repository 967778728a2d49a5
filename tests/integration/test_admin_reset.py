"""POST /api/admin/reset on a real Redis: with the token it resets this election, and only it.
(Its audit records are caught in memory here; tests/integration/test_desk.py follows them
through a real worker and broker.)"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
import redis
from pydantic import SecretStr

from streams.pipeline.app import create_app
from streams.pipeline.context import ElectionApp
from streams.settings import Settings
from streams.store.keys import election_namespace
from tests.unit.test_admin import TOKEN, FakeTopic, call

ELECTION = "parl.2024-07-04"


@pytest.fixture
def admin_app(redis_url: str, redis_prefix: str) -> ElectionApp:
    settings = Settings(
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        election_id=ELECTION,
        admin_token=SecretStr(TOKEN),
    )
    app = create_app(settings)
    app.night_topics = dataclasses.replace(
        app.night_topics,
        audit=FakeTopic("audit"),  # type: ignore[arg-type]
    )
    return app


async def test_reset_with_the_token_removes_this_elections_keys_only(
    admin_app: ElectionApp, redis_prefix: str
) -> None:
    client: Any = redis.Redis.from_url(admin_app.context.settings.redis_url)
    ours = election_namespace(redis_prefix, ELECTION)
    other_election = election_namespace(redis_prefix, "parl.2019-12-12")
    client.set(ours + "seat:E14001497", b"x")
    client.hset(ours + "counters", "validation:accepted", 3)
    client.set(other_election + "seat:E14001497", b"kept")
    try:
        refused = await call(admin_app, "/api/admin/reset", "POST", "Bearer wrong")
        assert refused.status == 401
        assert client.exists(ours + "seat:E14001497") == 1, "a refused reset changed state"

        response = await call(admin_app, "/api/admin/reset", "POST", f"Bearer {TOKEN}")
        assert response.status == 200, response.body
        assert b'"removed_keys":2' in response.body.replace(b" ", b"")
        assert client.exists(ours + "seat:E14001497", ours + "counters") == 0
        assert client.get(other_election + "seat:E14001497") == b"kept"
        audit = cast(FakeTopic, admin_app.night_topics.audit).records()
        assert [(r.stage, r.who) for r in audit] == [
            ("intended", "bootstrap-admin"),
            ("done", "bootstrap-admin"),
        ]
    finally:
        client.delete(other_election + "seat:E14001497")
        client.close()
        await admin_app.context.redis.aclose()
