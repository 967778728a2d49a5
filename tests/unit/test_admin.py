"""The worker's HTTP side is read-only unless a request carries the admin token."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from pydantic import SecretStr

from streams.pipeline.app import create_app
from streams.pipeline.context import ElectionApp
from streams.settings import Settings
from streams.web.admin import ADMIN_PREFIX, READ_ONLY_METHODS, require_admin

TOKEN = "s3cret-admin-token"


def routes(app: ElectionApp) -> dict[str, Any]:
    web = cast(AiohttpWeb, app.web)
    web.init_server()  # Faust's own blueprints too, as at start-up
    return dict(web.views)


def changing_routes(app: ElectionApp) -> list[tuple[str, str]]:
    """Every (path, method) the worker answers that is not a read."""
    return sorted(
        (path, method)
        for path, view in routes(app).items()
        for method in view.get_methods()
        if method not in READ_ONLY_METHODS
    )


def request(method: str, path: str, authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return make_mocked_request(method, path, headers=headers)


async def call(app: ElectionApp, path: str, method: str, authorization: str | None = None) -> Any:
    return await routes(app)[path].dispatch(request(method, path, authorization))


@pytest.fixture
def token_set() -> ElectionApp:
    return create_app(Settings(admin_token=SecretStr(TOKEN)))


@pytest.fixture
def token_unset() -> ElectionApp:
    return create_app(Settings(admin_token=None))


def test_only_admin_routes_change_state_and_reset_is_one(token_unset: ElectionApp) -> None:
    changing = changing_routes(token_unset)
    assert ("/api/admin/reset", "POST") in changing
    assert all(path.startswith(ADMIN_PREFIX) for path, _ in changing), changing


async def test_without_an_admin_token_every_changing_route_is_disabled(
    token_unset: ElectionApp,
) -> None:
    for path, method in changing_routes(token_unset):
        response = await call(token_unset, path, method, f"Bearer {TOKEN}")
        assert response.status == 403, (path, method)
        assert b"disabled" in response.body


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
async def test_every_changing_route_refuses_a_missing_or_wrong_token(
    token_set: ElectionApp, authorization: str | None
) -> None:
    for path, method in changing_routes(token_set):
        response = await call(token_set, path, method, authorization)
        assert response.status == 401, (path, method, authorization)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_guard_lets_the_right_token_through() -> None:
    settings = Settings(admin_token=SecretStr(TOKEN))
    assert require_admin(request("POST", "/api/admin/reset", f"Bearer {TOKEN}"), settings) is None
    assert require_admin(request("POST", "/api/admin/reset", f"bearer  {TOKEN} "), settings) is None
    # An empty token is no token: admin stays disabled rather than open to an empty header.
    empty = Settings(admin_token=SecretStr(""))
    assert require_admin(request("POST", "/api/admin/reset", "Bearer "), empty).status == 403


async def test_a_get_on_an_admin_route_changes_nothing(token_set: ElectionApp) -> None:
    response = await call(token_set, "/api/admin/reset", "GET", f"Bearer {TOKEN}")
    assert response.status == 405
