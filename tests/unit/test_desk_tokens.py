"""election-desk-tokens: a token printed once and kept as a digest, listed without it, revoked;
each change on the audit trail first, and none without it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import fakeredis
import pytest

import scripts.desk_tokens
from schemas.audit import AuditAction, AuditStage, Role
from scripts.desk_tokens import main
from streams.rules.desk import identify
from streams.settings import get_settings
from streams.store.desk import DeskPeople
from tests.unit.console_fixtures import OPERATOR, ConsoleAudit

TOKEN_LINE = re.compile(r"^ed \(editor\): (desk_\S+)$", re.MULTILINE)


class Console:
    """The command's Redis (fakeredis, one server for every client it opens) and audit topic."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = fakeredis.FakeServer()
        self.kafka = ConsoleAudit(monkeypatch)
        self.audit = self.kafka.records
        monkeypatch.setattr(scripts.desk_tokens, "redis_from_settings", self.redis)

    def redis(self, settings: Any, **options: Any) -> Any:
        return fakeredis.FakeAsyncRedis(server=self.server)

    async def people(self) -> DeskPeople:
        return DeskPeople(fakeredis.FakeAsyncRedis(server=self.server), "")


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Console:
    return Console(monkeypatch)


async def _enrolled(console: Console) -> list[Any]:
    return await (await console.people()).enrolled()


def test_a_token_is_printed_once_and_kept_only_as_a_digest(
    console: Console, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    assert main(["add", "ed", "--role", "editor"]) == 0
    out = capsys.readouterr().out
    [token] = TOKEN_LINE.findall(out)
    assert out.count(token) == 1
    [ed] = asyncio.run(_enrolled(console))
    assert identify(token, [ed]) == ed.person and ed.person.role is Role.EDITOR
    assert ed.created_by == f"console:{OPERATOR}"
    assert token not in caplog.text
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("ed ") and " editor " in listed and ed.created_by in listed
    assert token not in listed and ed.digest.hex() not in listed
    intended, done = console.audit
    assert (intended.stage, done.stage) == (AuditStage.INTENDED, AuditStage.DONE)
    assert (done.action, done.who, done.role, done.target) == (
        AuditAction.TOKEN_ADD,
        ed.created_by,
        Role.ADMIN,
        "ed",
    )
    assert done.after == {
        "name": "ed",
        "role": "editor",
        "created_at": ed.created_at.isoformat(),
        "created_by": ed.created_by,
    }
    assert done.rehearsal == (get_settings().mode == "rehearsal")
    assert all(token not in r.model_dump_json() for r in console.audit)
    assert all(ed.digest.hex() not in r.model_dump_json() for r in console.audit)


def test_a_name_with_a_token_gets_no_second_until_revoked(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["add", "ed", "--role", "editor"]) == 0
    assert main(["add", "ed", "--role", "admin"]) == 1
    assert "already has a token" in capsys.readouterr().err
    assert main(["revoke", "ed"]) == 0
    assert "revoked ed's token (editor)" in capsys.readouterr().out
    assert asyncio.run(_enrolled(console)) == []
    assert main(["revoke", "ed"]) == 1
    assert main(["list"]) == 0
    assert capsys.readouterr().out == "no one has a desk token\n"
    revoked = console.audit[-1]
    assert (revoked.action, revoked.stage, revoked.target, revoked.after) == (
        AuditAction.TOKEN_REVOKE,
        AuditStage.DONE,
        "ed",
        None,
    )
    assert revoked.before is not None and revoked.before["role"] == "editor"
    assert len(console.audit) == 4  # add and revoke, intended and done; refusals change nothing


@pytest.mark.parametrize("name", ["Ed", "bootstrap-admin", "ed:x"])
def test_a_name_the_desk_cannot_take_is_refused(
    console: Console, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["add", name, "--role", "viewer"]) == 2
    assert capsys.readouterr().err
    assert console.audit == []


def test_with_kafka_unreachable_nothing_changes(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    console.kafka.kafka_down = True
    assert main(["add", "ed", "--role", "editor"]) == 1
    captured = capsys.readouterr()
    assert "nothing changed: the audit trail could not be written" in captured.err
    assert "desk_" not in captured.out + captured.err
    assert asyncio.run(_enrolled(console)) == []
