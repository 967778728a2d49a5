"""The worker's HTTP side is read-only unless a person with the role for it asks: every admin
and desk route with no token, a wrong one, and a viewer's, an editor's and an admin's."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

import fakeredis
import orjson
import pytest
from aiohttp import web as aiohttp_web
from aiohttp.test_utils import make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from pydantic import SecretStr

from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from streams.pipeline.app import create_app
from streams.pipeline.context import ElectionApp
from streams.rules.desk import BOOTSTRAP_ADMIN, Enrolment, Person, token_digest
from streams.settings import Settings
from streams.store.desk import DeskPeople
from streams.store.keys import election_namespace
from streams.store.rebuild import RebuildReport
from streams.web import admin
from streams.web.guard import GuardedView, current_person

TOKEN = "s3cret-admin-token"
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GUARDED_PREFIXES = ("/api/admin/", "/api/desk/")
# One person of each role, by name, and their tokens.
PEOPLE = {
    "vera": (Role.VIEWER, "desk_viewer-token-of-vera"),
    "ed": (Role.EDITOR, "desk_editor-token-of-ed"),
    "ada": (Role.ADMIN, "desk_admin-token-of-ada"),
}
RANK = [Role.VIEWER, Role.EDITOR, Role.ADMIN]


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


def guarded_routes(app: ElectionApp) -> list[tuple[str, str, Role]]:
    """Every (path, method, role needed) of the admin and desk views."""
    return sorted(
        (path, method, role)
        for path, view in routes(app).items()
        if isinstance(view, GuardedView)
        for method, role in view.roles.items()
    )


def request(method: str, path: str, authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return make_mocked_request(method, path, headers=headers)


async def call(app: ElectionApp, path: str, method: str, authorization: str | None = None) -> Any:
    return await routes(app)[path].dispatch(request(method, path, authorization))


class Sent:
    """What a topic's send hands back: a delivery that resolves to the record's metadata."""

    def __init__(self, topic: str, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset

    def __await__(self) -> Iterator[Any]:
        yield from ()
        return self


class FakeTopic:
    """A topic of the app that keeps what is sent to it, acknowledged at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[bytes, bytes, dict[str, bytes]]] = []

    async def send(self, *, key: bytes, value: bytes, headers: Any = None) -> Sent:
        self.sent.append((key, value, dict(headers or {})))
        return Sent(self.name, len(self.sent) - 1)

    def records(self) -> list[AuditRecord]:
        return [AuditRecord.model_validate_json(value) for _, value, _ in self.sent]


def desk_app(
    monkeypatch: pytest.MonkeyPatch, admin_token: str | None = TOKEN, **settings: Any
) -> ElectionApp:
    """A worker's app on fakeredis with the three people enrolled, whose Kafka topics keep
    what is sent to them (audit, declarations)."""
    app = create_app(
        Settings(admin_token=SecretStr(admin_token) if admin_token else None, **settings)
    )
    redis = fakeredis.FakeAsyncRedis()
    monkeypatch.setattr(app.context, "redis", redis, raising=False)
    app.night_topics = dataclasses.replace(
        app.night_topics,
        audit=FakeTopic("audit"),  # type: ignore[arg-type]
        declarations=FakeTopic("declarations"),  # type: ignore[arg-type]
    )
    return app


async def enrol_people(app: ElectionApp) -> None:
    people = DeskPeople(app.context.redis, app.context.settings.redis_key_prefix)
    for name, (role, token) in PEOPLE.items():
        await people.enrol(
            Enrolment(Person(name, role), token_digest(token), dt.datetime.now(dt.UTC), "test")
        )


def audit_of(app: ElectionApp) -> FakeTopic:
    return cast(FakeTopic, app.night_topics.audit)


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch) -> ElectionApp:
    made = desk_app(monkeypatch)
    await enrol_people(made)
    return made


def echo_handlers(app: ElectionApp) -> None:
    """Each guarded handler answers who it was let through for, and does nothing else."""

    async def echo(request: Any, **kwargs: Any) -> Any:
        return aiohttp_web.json_response({"who": current_person().name})

    for view in routes(app).values():
        if isinstance(view, GuardedView):
            for method in view.roles:
                view.methods[method.lower()] = echo


def test_every_route_that_changes_state_is_guarded_and_reset_is_one(app: ElectionApp) -> None:
    views = routes(app)
    changing = changing_routes(app)
    assert ("/api/admin/reset", "POST") in changing
    assert ("/api/desk/declarations", "POST") in changing
    for path, method in changing:
        assert isinstance(views[path], GuardedView), (path, method)
        assert method in views[path].roles, (path, method)
    for path, view in views.items():
        if path.startswith(GUARDED_PREFIXES):
            assert isinstance(view, GuardedView), path


def test_the_roles_each_route_needs(app: ElectionApp) -> None:
    assert guarded_routes(app) == [
        ("/api/admin/rebuild", "POST", Role.ADMIN),
        ("/api/admin/reset", "POST", Role.ADMIN),
        ("/api/desk/alerts/{alert_id}/{verb}", "POST", Role.EDITOR),
        ("/api/desk/declarations", "POST", Role.EDITOR),
        ("/api/desk/events", "GET", Role.VIEWER),
        ("/api/desk/queue", "GET", Role.VIEWER),
        ("/api/desk/seats/{ons_id}/call", "POST", Role.EDITOR),
        ("/api/desk/seats/{ons_id}/choose", "POST", Role.EDITOR),
        ("/api/desk/seats/{ons_id}/sources", "GET", Role.VIEWER),
    ]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
async def test_every_guarded_route_refuses_a_missing_or_wrong_token(
    app: ElectionApp, authorization: str | None
) -> None:
    echo_handlers(app)
    for path, method, _ in guarded_routes(app):
        response = await call(app, path, method, authorization)
        assert response.status == 401, (path, method, authorization)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert orjson.loads(response.body) == {"error": "missing or unknown token"}


@pytest.mark.parametrize("name", [*PEOPLE, BOOTSTRAP_ADMIN])
async def test_each_role_is_let_through_where_its_rank_allows_and_403_elsewhere(
    app: ElectionApp, name: str
) -> None:
    role, token = PEOPLE.get(name, (Role.ADMIN, TOKEN))
    echo_handlers(app)
    for path, method, needed in guarded_routes(app):
        response = await call(app, path, method, f"Bearer {token}")
        if RANK.index(role) >= RANK.index(needed):
            assert response.status == 200, (path, method, name)
            assert orjson.loads(response.body) == {"who": name}
        else:
            assert response.status == 403, (path, method, name)
            assert orjson.loads(response.body) == {
                "error": f"{name} is a {role}: this needs {needed}"
            }
        assert token.encode() not in response.body


async def test_without_an_admin_token_people_still_get_in_and_nobody_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for unset in (None, ""):
        made = desk_app(monkeypatch, admin_token=unset)
        await enrol_people(made)
        echo_handlers(made)
        assert (await call(made, "/api/admin/reset", "POST", "Bearer ")).status == 401
        assert (await call(made, "/api/admin/reset", "POST", f"Bearer {TOKEN}")).status == 401
        ada = await call(made, "/api/admin/reset", "POST", f"Bearer {PEOPLE['ada'][1]}")
        assert ada.status == 200


async def test_a_revoked_token_is_unknown_at_once(app: ElectionApp) -> None:
    echo_handlers(app)
    path, token = "/api/desk/declarations", PEOPLE["ed"][1]
    assert (await call(app, path, "POST", f"bearer  {token} ")).status == 200
    await DeskPeople(app.context.redis, "").revoke("ed")
    assert (await call(app, path, "POST", f"Bearer {token}")).status == 401


async def test_a_method_a_view_does_not_name_is_refused_before_the_guard(
    app: ElectionApp,
) -> None:
    response = await call(app, "/api/admin/reset", "GET", f"Bearer {TOKEN}")
    assert response.status == 405
    assert audit_of(app).sent == []


async def test_tokens_never_reach_the_log_or_an_answer(
    app: ElectionApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    echo_handlers(app)
    answers = []
    for authorization in (f"Bearer {TOKEN}x", f"Bearer {PEOPLE['vera'][1]}"):
        answers.append(await call(app, "/api/admin/reset", "POST", authorization))
    assert [a.status for a in answers] == [401, 403]
    assert "refused" in caplog.text and "vera" in caplog.text
    for _, token in [*PEOPLE.values(), (None, TOKEN)]:
        assert token not in caplog.text
        assert all(token.encode() not in a.body for a in answers)


async def test_reset_is_on_the_audit_trail_before_and_after(app: ElectionApp) -> None:
    ns = election_namespace("", "parl.2024-07-04")
    await app.context.redis.set(ns + "seat:E14001497", b"x")
    response = await call(app, "/api/admin/reset", "POST", f"Bearer {PEOPLE['ada'][1]}")
    assert response.status == 200, response.body
    assert orjson.loads(response.body)["removed_keys"] == 1
    intended, done = audit_of(app).records()
    assert (intended.stage, done.stage) == (AuditStage.INTENDED, AuditStage.DONE)
    assert intended.action_id == done.action_id
    assert (done.action, done.who, done.role, done.target) == (
        AuditAction.RESET,
        "ada",
        Role.ADMIN,
        "parl.2024-07-04",
    )
    assert done.before == {"seats_tallied": 0, "sequence": 0}
    assert done.after == {"removed_keys": 1}
    assert done.rehearsal and done.election_id == "parl.2024-07-04"
    assert [key for key, _, _ in audit_of(app).sent] == [intended.action_id.encode()] * 2


async def test_rebuild_by_the_bootstrap_admin_is_on_the_audit_trail(
    app: ElectionApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def rebuilt(*args: Any) -> RebuildReport:
        return RebuildReport(messages=651, seconds=1.5)

    monkeypatch.setattr(admin, "rebuild_now", rebuilt)
    response = await call(app, "/api/admin/rebuild", "POST", f"Bearer {TOKEN}")
    assert response.status == 200 and orjson.loads(response.body)["messages"] == 651
    intended, done = audit_of(app).records()
    assert (intended.who, intended.role, intended.action) == (
        BOOTSTRAP_ADMIN,
        Role.ADMIN,
        AuditAction.REBUILD,
    )
    assert done.after == {"messages": 651, "seconds": 1.5, "seats_tallied": 0, "sequence": 0}


async def test_nothing_is_reset_when_the_audit_trail_cannot_be_written(
    app: ElectionApp,
) -> None:
    ns = election_namespace("", "parl.2024-07-04")
    await app.context.redis.set(ns + "seat:E14001497", b"x")

    async def refusing(**kwargs: Any) -> Any:
        raise ConnectionError("no broker")

    audit_of(app).send = refusing  # type: ignore[method-assign]
    response = await call(app, "/api/admin/reset", "POST", f"Bearer {TOKEN}")
    assert response.status == 503
    assert b"nothing was done" in response.body
    assert await app.context.redis.exists(ns + "seat:E14001497") == 1
