"""CORS of the graphics API through a real server: preflight, exposed ETag, Vary by Origin;
none on the admin endpoints, and none at all with ELECTION_CORS_ALLOW_ORIGIN empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.pipeline.app import create_app
from streams.settings import Settings

GRAPHICS = "https://graphics.example.org"
ELSEWHERE = "https://elsewhere.example.net"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"


class FakeStore:
    """The reads /api/state and /api/seats make, without Redis."""

    async def sequence(self) -> int:
        return 7

    async def state(self, register: Any = None) -> Any:
        return FakeState()

    async def seats(self) -> dict[str, Any]:
        return {}


class FakeState:
    def model_copy(self, update: dict[str, Any]) -> FakeState:
        return self  # the view marks the worker's mode on it

    def model_dump_json(self) -> str:
        return '{"sequence": 7}'


@asynccontextmanager
async def serving(
    origin: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(Settings(cors_allow_origin=origin))
    monkeypatch.setattr(app.context, "store", FakeStore(), raising=False)
    monkeypatch.setattr(app.context, "register", object(), raising=False)
    monkeypatch.setattr(app.context, "projecting", None, raising=False)
    web = cast(AiohttpWeb, app.web)
    web.init_server()  # Faust's own blueprints too, as at start-up
    async with TestClient(TestServer(web.web_app)) as client:
        yield client


def preflight(
    method: str = "GET", headers: str | None = None, origin: str = GRAPHICS
) -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return asked


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/api/state", "If-None-Match"),
        ("/api/seats/E14001497", None),
        ("/api/events", "Last-Event-ID"),
    ],
)
async def test_a_preflight_is_answered_for_the_api(
    monkeypatch: pytest.MonkeyPatch, path: str, header: str | None
) -> None:
    async with serving("*", monkeypatch) as client:
        response = await client.options(path, headers=preflight("GET", header))
        assert response.status == 200, await response.text()
        assert response.headers[ALLOW_ORIGIN] == GRAPHICS
        assert response.headers["Access-Control-Allow-Methods"] == "GET"
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        if header is not None:
            assert response.headers["Access-Control-Allow-Headers"].lower() == header.lower()
        assert "Origin" in response.headers["Vary"]


async def test_a_get_carries_the_origin_and_exposes_the_etag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving("*", monkeypatch) as client:
        response = await client.get("/api/state", headers={"Origin": GRAPHICS})
        assert response.status == 200
        assert response.headers[ALLOW_ORIGIN] == GRAPHICS
        assert "ETag" in response.headers["Access-Control-Expose-Headers"].split(",")
        assert response.headers["ETag"]
        # Answers differ by Origin (and by Accept-Encoding, for the cached body).
        assert response.headers["Vary"] == "Accept-Encoding, Origin"
        again = await client.get(
            "/api/state",
            headers={"Origin": GRAPHICS, "If-None-Match": response.headers["ETag"]},
        )
        assert again.status == 304 and again.headers[ALLOW_ORIGIN] == GRAPHICS
        head = await client.head("/api/seats", headers={"Origin": GRAPHICS})
        assert head.status == 200 and head.headers[ALLOW_ORIGIN] == GRAPHICS
        # A request without an Origin is not cross-origin: no CORS headers, same Vary.
        plain = await client.get("/api/state")
        assert ALLOW_ORIGIN not in plain.headers and "Origin" in plain.headers["Vary"]


async def test_only_reads_are_allowed_and_the_admin_endpoints_stay_same_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving("*", monkeypatch) as client:
        post = await client.options("/api/state", headers=preflight("POST"))
        assert post.status == 403 and ALLOW_ORIGIN not in post.headers
        admin = await client.options("/api/admin/reset", headers=preflight("POST", "Authorization"))
        assert admin.status == 405 and ALLOW_ORIGIN not in admin.headers
        refused = await client.post("/api/admin/reset", headers={"Origin": GRAPHICS})
        assert refused.status == 401 and ALLOW_ORIGIN not in refused.headers
        desk = await client.options(
            "/api/desk/declarations", headers=preflight("POST", "Authorization")
        )
        assert desk.status == 405 and ALLOW_ORIGIN not in desk.headers


async def test_a_named_origin_is_the_only_one_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(GRAPHICS, monkeypatch) as client:
        ours = await client.get("/api/state", headers={"Origin": GRAPHICS})
        assert ours.headers[ALLOW_ORIGIN] == GRAPHICS
        theirs = await client.get("/api/state", headers={"Origin": ELSEWHERE})
        assert theirs.status == 200 and ALLOW_ORIGIN not in theirs.headers
        refused = await client.options("/api/state", headers=preflight(origin=ELSEWHERE))
        assert refused.status == 403 and ALLOW_ORIGIN not in refused.headers


async def test_an_empty_origin_turns_cors_off(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving("", monkeypatch) as client:
        response = await client.get("/api/state", headers={"Origin": GRAPHICS})
        assert response.status == 200
        assert not [name for name in response.headers if name.startswith("Access-Control-")]
        assert "Origin" not in response.headers.get("Vary", "")
        answered = await client.options("/api/state", headers=preflight("GET", "If-None-Match"))
        assert answered.status == 405
        assert not [name for name in answered.headers if name.startswith("Access-Control-")]
