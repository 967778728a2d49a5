"""The newsroom desk: people and their tokens, and a seat corrected by hand, validated like any
declaration, on the declarations topic as the desk's and on the audit trail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import fakeredis
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from schemas.audit import AuditAction, AuditStage, Role
from schemas.declaration import Declaration, DeclarationKind
from schemas.results import SeatResult
from streams.pipeline.context import ElectionApp
from streams.rules import desk
from streams.rules.corrections import (
    ChoiceRefused,
    RevisionRefused,
    chosen_entry,
    desk_declaration,
    desk_entry,
    desk_revision,
)
from streams.rules.desk import (
    BOOTSTRAP_ADMIN,
    Enrolment,
    NameRefused,
    Person,
    bearer_token,
    check_name,
    identify,
    new_token,
    token_digest,
)
from streams.rules.reference import Register, load_register
from streams.rules.sources import SourceView, source_view
from streams.store.desk import DeskPeople, DeskRevisions
from streams.store.tally_store import PendingApply
from tests.unit.alert_fixtures import DATA_DIR, seat_result
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK, TRUSS, declaration_of, misreported
from tests.unit.test_admin import PEOPLE, TOKEN, FakeTopic, audit_of, desk_app, enrol_people

ED = f"Bearer {PEOPLE['ed'][1]}"
VERA = f"Bearer {PEOPLE['vera'][1]}"
NOW = dt.datetime(2024, 7, 5, 12, 0, tzinfo=dt.UTC)


# ---- people, roles and tokens ----


@pytest.mark.parametrize(
    ("role", "may"),
    [
        (Role.VIEWER, {Role.VIEWER}),
        (Role.EDITOR, {Role.VIEWER, Role.EDITOR}),
        (Role.ADMIN, {Role.VIEWER, Role.EDITOR, Role.ADMIN}),
    ],
)
def test_each_role_may_do_what_the_roles_below_it_may(role: Role, may: set[Role]) -> None:
    assert {needed for needed in Role if Person("p", role).may(needed)} == may


@pytest.mark.parametrize(
    "name", ["", "Ed", "ed smith", "-ed", "ed:x", "é", "e" * 41, BOOTSTRAP_ADMIN]
)
def test_a_name_that_would_need_quoting_or_is_taken_is_refused(name: str) -> None:
    with pytest.raises(NameRefused):
        check_name(name)


def test_names_the_desk_takes() -> None:
    assert [check_name(n) for n in ("ed", "anna.k", "j_smith-2", "e" * 40)]


def test_tokens_are_long_random_and_marked() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("desk_") and len(t) == len("desk_") + 43 for t in tokens)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
    ],
)
def test_the_bearer_token_of_a_header(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


def _enrolled(*people: tuple[str, Role, str]) -> list[Enrolment]:
    return [
        Enrolment(Person(name, role), token_digest(token), NOW, "test")
        for name, role, token in people
    ]


def test_identify_finds_the_person_or_the_bootstrap_admin_or_nobody() -> None:
    enrolled = _enrolled(("vera", Role.VIEWER, "t-vera"), ("ed", Role.EDITOR, "t-ed"))
    assert identify("t-ed", enrolled) == Person("ed", Role.EDITOR)
    assert identify("t-ed", enrolled, "boot") == Person("ed", Role.EDITOR)
    assert identify("boot", enrolled, "boot") == Person(BOOTSTRAP_ADMIN, Role.ADMIN)
    assert identify("boot", enrolled, None) is None
    assert identify("", enrolled, "") is None
    assert identify("t-ed ", enrolled, "boot") is None


def test_every_comparison_is_of_digests_in_constant_time_and_none_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[Any, Any]] = []
    constant_time = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(desk.hmac, "compare_digest", recording)
    enrolled = _enrolled(
        ("ada", Role.ADMIN, "t-ada"), ("ed", Role.EDITOR, "t-ed"), ("vera", Role.VIEWER, "t-v")
    )
    # The first stored token matches: the others and the bootstrap admin are compared still.
    assert identify("t-ada", enrolled, "boot") == Person("ada", Role.ADMIN)
    assert len(compared) == 4
    assert all(isinstance(x, bytes) and len(x) == 32 for pair in compared for x in pair)
    assert {pair[0] for pair in compared} == {token_digest("t-ada")}
    assert all(b"t-ada" not in x and b"boot" not in x for pair in compared for x in pair)


async def test_only_a_digest_of_each_token_is_kept_and_a_name_takes_one_token() -> None:
    redis = fakeredis.FakeAsyncRedis()
    people = DeskPeople(redis, "rehearsal:")
    token = new_token()
    ed = Enrolment(Person("ed", Role.EDITOR), token_digest(token), NOW, "console:root")
    assert await people.enrol(ed)
    assert not await people.enrol(ed)  # taken: revoke first
    assert await people.enrol(_enrolled(("ada", Role.ADMIN, "x"))[0])
    assert await redis.keys("*") == [b"rehearsal:desk:people"]
    stored = b"".join(await redis.hvals("rehearsal:desk:people"))
    assert token.encode() not in stored and token_digest(token).hex().encode() in stored
    assert await people.find("ed") == ed
    assert [e.person.name for e in await people.enrolled()] == ["ada", "ed"]
    assert await people.revoke("ed") and not await people.revoke("ed")
    assert await people.find("ed") is None


async def test_a_revision_of_a_seat_goes_to_one_correction() -> None:
    revisions = DeskRevisions(fakeredis.FakeAsyncRedis(), "election:{parl.2024-07-04}:")
    assert await revisions.highest_claimed(SOUTH_WEST_NORFOLK) == 0
    assert await revisions.claim(SOUTH_WEST_NORFOLK, 1, "ed")
    assert not await revisions.claim(SOUTH_WEST_NORFOLK, 1, "ada")
    assert await revisions.claim(SOUTH_WEST_NORFOLK, 3, "ada")
    assert await revisions.highest_claimed(SOUTH_WEST_NORFOLK) == 3
    assert await revisions.highest_claimed("E14000530") == 0


# ---- hand corrections, the rules ----


def test_an_entry_is_a_json_object_or_nothing() -> None:
    assert desk_entry(b'{"a": 1}', 100) == {"a": 1}
    for raw in (b"[1]", b"nope", b'"a"', b"", b"[" * 5000):
        assert desk_entry(raw, 100_000) is None
    assert desk_entry(b'{"a": 1}', 7) is None  # larger than the limit: left to validation


def test_the_desk_names_itself_and_the_workers_mode_whatever_the_entry_says() -> None:
    entry = {"source": "pa:live", "rehearsal": False, "revision": 4, "kind": "result"}
    sent = orjson.loads(desk_declaration(entry, "ed", rehearsal=True))
    assert sent == {"source": "desk:ed", "rehearsal": True, "revision": 4, "kind": "result"}
    assert orjson.loads(desk_declaration({"kind": "recount"}, "ed", False))["revision"] == 1


@pytest.mark.parametrize(
    ("asked", "on_record", "claimed", "expected"),
    [
        (None, 0, 0, 1),
        (None, 2, 0, 3),
        (None, 2, 5, 6),
        (3, 2, 0, 3),
        (101, 1, 0, 101),
        (2, 2, 0, "taken"),
        (1, 0, 1, "taken"),
        (4, 2, 5, "taken"),
        (102, 1, 0, "revision_jump"),
        (101, 0, 0, "revision_jump"),
    ],
)
def test_the_revision_a_correction_goes_out_as(
    asked: int | None, on_record: int, claimed: int, expected: int | str
) -> None:
    if isinstance(expected, int):
        assert desk_revision(asked, on_record, claimed, max_jump=100) == expected
        return
    with pytest.raises(RevisionRefused) as refused:
        desk_revision(asked, on_record, claimed, max_jump=100)
    assert refused.value.reason == expected


# ---- hand corrections over HTTP ----


def entry(**changes: Any) -> dict[str, Any]:
    """South West Norfolk's result as an editor types it: no source, no revision."""
    body = orjson.loads(declaration_of(SOUTH_WEST_NORFOLK).model_dump_json())
    del body["source"], body["revision"]
    return {**body, **changes}


@asynccontextmanager
async def serving(app: ElectionApp) -> AsyncIterator[TestClient[Any, Any]]:
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    async with TestClient(TestServer(web.web_app)) as client:
        yield client


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch) -> ElectionApp:
    made = desk_app(monkeypatch)
    await enrol_people(made)
    return made


def sent_declarations(app: ElectionApp) -> list[tuple[bytes, Declaration, dict[str, bytes]]]:
    topic = cast(FakeTopic, app.night_topics.declarations)
    return [(k, Declaration.model_validate_json(v), h) for k, v, h in topic.sent]


async def correct(app: ElectionApp, body: Any, authorization: str = ED) -> tuple[int, Any]:
    async with serving(app) as client:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        response = await client.post(
            "/api/desk/declarations", data=raw, headers={"Authorization": authorization}
        )
        return response.status, await response.json()


async def test_a_correction_goes_out_as_the_desks_keyed_by_its_seat_and_on_the_record(
    app: ElectionApp,
) -> None:
    status, answer = await correct(app, entry(source="pa:live", rehearsal=False))
    assert status == 202, answer
    [(key, sent, headers)] = sent_declarations(app)
    assert key == SOUTH_WEST_NORFOLK.encode()
    assert (sent.source, sent.revision, sent.rehearsal) == ("desk:ed", 1, True)
    assert sent.candidates == declaration_of(SOUTH_WEST_NORFOLK).candidates
    intended, done = audit_of(app).records()
    assert answer == {
        "constituency_id": SOUTH_WEST_NORFOLK,
        "source": "desk:ed",
        "revision": 1,
        "rehearsal": True,
        "action_id": intended.action_id,
        "topic": "declarations",
        "partition": 0,
        "offset": 0,
    }
    assert headers == {"audit-action": intended.action_id.encode()}
    assert (intended.stage, done.stage) == (AuditStage.INTENDED, AuditStage.DONE)
    assert (done.action, done.who, done.role, done.target) == (
        AuditAction.CORRECTION,
        "ed",
        Role.EDITOR,
        SOUTH_WEST_NORFOLK,
    )
    assert intended.before is not None
    assert (intended.before["on_air"], intended.before["sources"]) == (None, [])
    assert intended.after == orjson.loads(sent.model_dump_json())
    assert done.after == {
        **intended.after,
        "kafka": {"topic": "declarations", "partition": 0, "offset": 0},
    }


async def test_the_next_correction_takes_the_next_revision_and_a_taken_one_is_409(
    app: ElectionApp,
) -> None:
    assert (await correct(app, entry()))[0] == 202
    status, answer = await correct(app, entry(kind="correction"))
    assert (status, answer["revision"]) == (202, 2)
    status, answer = await correct(app, entry(kind="correction", revision=2))
    assert status == 409 and answer["error"] == "taken"
    assert "send revision 3" in answer["detail"]
    assert [d.revision for _, d, _ in sent_declarations(app)] == [1, 2]
    assert [r.stage for r in audit_of(app).records()][-1] == AuditStage.REFUSED


async def test_the_desk_starts_from_its_own_revision_on_record_not_the_feeds(
    app: ElectionApp,
) -> None:
    store = app.context.store
    replay = declaration_of(SOUTH_WEST_NORFOLK)
    desk_two = replay.model_copy(update={"source": "desk:ada", "revision": 2})
    await store.apply_steps(
        [
            PendingApply(replay.model_copy(update={"revision": 7}), "declarations", 0, 0),
            PendingApply(desk_two, "declarations", 0, 1),
        ],
        app.context.register,
    )
    status, answer = await correct(app, entry(kind="correction"))
    assert (status, answer["revision"]) == (202, 3)
    status, answer = await correct(app, entry(revision=250))
    assert (status, answer["error"]) == (422, "revision_jump")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (entry(valid_votes=1), "figures_do_not_add_up"),
        (entry(constituency_name="North West Norfolk"), "unknown_constituency"),
        (entry(election_id="parl.2019-12-12"), "wrong_election"),
        (entry(revision=0), "schema_violation"),
        (entry(revision=[2]), "schema_violation"),
        (entry(message_type="exit_poll"), "not_a_declaration"),
        (entry(declared_at="2024-07-04T20:00:00+00:00"), "declared_before_polls_closed"),
        (b"{not json", "malformed_json"),
        ([entry()], "schema_violation"),
    ],
)
async def test_a_correction_validation_rejects_is_422_with_the_reason_and_on_the_record(
    app: ElectionApp, body: Any, reason: str
) -> None:
    status, answer = await correct(app, body)
    assert (status, answer["error"]) == (422, reason), answer
    assert answer["detail"]
    assert sent_declarations(app) == []
    [refused] = audit_of(app).records()
    assert (refused.stage, refused.action, refused.who, refused.detail) == (
        AuditStage.REFUSED,
        AuditAction.CORRECTION,
        "ed",
        answer["detail"],
    )
    expected_target = SOUTH_WEST_NORFOLK if isinstance(body, dict) else "unknown"
    assert refused.target == expected_target
    # No revision was taken by it: the next good correction is the seat's first.
    assert (await correct(app, entry()))[1]["revision"] == 1


async def test_an_exit_poll_is_not_a_correction(app: ElectionApp) -> None:
    from tests.unit.tally_fixtures import night

    poll = orjson.loads(night().exit_poll.model_dump_json())
    status, answer = await correct(app, poll)
    assert (status, answer["error"]) == (422, "not_a_declaration")
    assert sent_declarations(app) == []


async def test_a_recount_is_flagged_as_a_declaration_of_kind_recount(app: ElectionApp) -> None:
    candidates = [{**c, "votes": None, "elected": False} for c in entry()["candidates"]]
    recount = entry(
        kind="recount",
        candidates=candidates,
        electorate=None,
        valid_votes=None,
        rejected_ballots=None,
    )
    status, answer = await correct(app, recount)
    assert status == 202, answer
    [(_, sent, _)] = sent_declarations(app)
    assert sent.kind is DeclarationKind.RECOUNT and sent.source == "desk:ed"


async def test_a_live_workers_corrections_are_live_whatever_the_entry_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = desk_app(monkeypatch, mode="live")
    await enrol_people(live)
    status, answer = await correct(live, entry(rehearsal=True))
    assert status == 202 and answer["rehearsal"] is False
    [(_, sent, _)] = sent_declarations(live)
    assert sent.rehearsal is False
    assert all(not record.rehearsal for record in audit_of(live).records())


async def test_a_correction_kafka_does_not_take_is_failed_on_the_record_and_503(
    app: ElectionApp,
) -> None:
    async def refusing(**kwargs: Any) -> Any:
        raise ConnectionError("no broker")

    cast(FakeTopic, app.night_topics.declarations).send = refusing  # type: ignore[method-assign]
    status, answer = await correct(app, entry())
    assert status == 503 and "send it again" in answer["error"]
    _, failed = audit_of(app).records()
    assert failed.stage == AuditStage.FAILED and "no broker" in (failed.detail or "")


async def test_no_token_is_401_and_a_viewers_correction_403_and_neither_is_sent(
    app: ElectionApp,
) -> None:
    assert (await correct(app, entry(), authorization=""))[0] == 401
    status, answer = await correct(app, entry(), authorization=VERA)
    assert (status, answer) == (403, {"error": "vera is a viewer: this needs editor"})
    assert sent_declarations(app) == [] and audit_of(app).sent == []


async def test_a_token_sent_with_a_correction_is_in_no_log_answer_or_record(
    app: ElectionApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    for body in (entry(), entry(valid_votes=1)):
        await correct(app, body)
    await correct(app, entry(), authorization=f"Bearer {TOKEN}")
    kept = caplog.text + "".join(value.decode() for _, value, _ in audit_of(app).sent)
    for _, token in [*PEOPLE.values(), (None, TOKEN)]:
        assert token not in kept


# ---- every source's figures for a seat ----


async def test_the_desk_sees_every_sources_figures_whose_are_on_air_and_where_they_differ(
    app: ElectionApp,
) -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    pa = result.model_copy(update={"source": "pa:rehearsal"})
    replay = misreported(result, "replay:ge2024")
    await app.context.store.apply_steps(
        [PendingApply(replay, "declarations", 0, 0), PendingApply(pa, "declarations", 0, 1)],
        app.context.register,
    )
    async with serving(app) as client:
        response = await client.get(
            f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/sources", headers={"Authorization": VERA}
        )
        report = await response.json()
        unknown = await client.get(
            "/api/desk/seats/E99999999/sources", headers={"Authorization": VERA}
        )
        quiet = await client.get(
            "/api/desk/seats/W07000081/sources", headers={"Authorization": VERA}
        )
        quiet_report = await quiet.json()
        anonymous = await client.get(f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/sources")
    assert response.status == 200
    assert (report["constituency_name"], report["on_air"], report["rehearsal"]) == (
        "South West Norfolk",
        "pa",
        True,
    )
    assert [(s["source"], s["majority"]) for s in report["sources"]] == [
        ("pa", 630),
        ("replay", 600),
    ]
    [conflict] = report["conflicts"]
    differences = {d["field"]: d["values"] for d in conflict["differences"]}
    assert differences["majority"] == {"pa": 630, "replay": 600}
    truss = next(d for d in conflict["differences"] if d["field"] == f"votes:{TRUSS}")
    assert truss["label"] == "votes of Liz Truss (Con)"
    assert unknown.status == 404
    assert quiet.status == 200
    assert (quiet_report["on_air"], quiet_report["sources"], quiet_report["conflicts"]) == (
        None,
        [],
        [],
    )
    assert anonymous.status == 401


def _on_air_and_agency() -> tuple[SeatResult, SourceView, Register]:
    register = load_register(DATA_DIR)
    official = declaration_of(SOUTH_WEST_NORFOLK)
    on_air = seat_result(official, register, 1)
    return on_air, source_view(misreported(official, "agency:wire")), register


def test_a_source_chosen_on_the_desk_becomes_a_correction_with_its_figures() -> None:
    on_air, agency, register = _on_air_and_agency()
    entry = chosen_entry(on_air, agency, register.parties)
    declaration = Declaration.model_validate({**entry, "source": "desk:ed", "revision": 2})
    assert declaration.kind is DeclarationKind.CORRECTION
    assert declaration.declared_at == agency.declared_at
    assert {c.person_id: c.votes for c in declaration.candidates} == agency.votes
    assert declaration.valid_votes == sum((agency.votes or {}).values())
    assert [c.person_id for c in declaration.candidates if c.elected] == [agency.winner]
    truss = next(c for c in declaration.candidates if c.person_id == TRUSS)
    assert truss.party.abbreviation == "Con" and truss.party.ec_id == "PP52"


def test_a_source_naming_other_candidates_is_no_choice_the_desk_can_make() -> None:
    on_air, agency, register = _on_air_and_agency()
    stranger = dataclasses.replace(agency, votes={**(agency.votes or {}), 999_999: 5})
    with pytest.raises(ChoiceRefused, match="other candidates"):
        chosen_entry(on_air, stranger, register.parties)
