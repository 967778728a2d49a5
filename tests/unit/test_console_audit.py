"""election-reset and election-rebuild on the audit trail as console:<user>: the intent, with
the state as it was, on Kafka before anything changes, then done or failed; nothing done and
exit 1 when the intent cannot be written."""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ReadOnlyError

import scripts.rebuild
import scripts.reset_election
from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from scripts.console_audit import console_person
from streams.rules.reference import Register
from streams.settings import Settings, get_settings
from streams.store.rebuild import RebuildReport
from streams.store.tally_store import TallyStore
from tests.store_helpers import apply_batch
from tests.unit.console_fixtures import OPERATOR, ConsoleAudit
from tests.unit.tally_fixtures import night
from tests.unit.test_tally_store import pending

ELECTION = "parl.2024-07-04"
NOT_RECORDED = "nothing changed: the audit trail could not be written"


class Console:
    """One fakeredis server for every client a command opens, the audit topic in memory, and
    the seats tallied as each record went to Kafka."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = fakeredis.FakeServer()
        self.kafka = ConsoleAudit(monkeypatch)
        self.kafka.witness = self.seats_tallied
        for command in (scripts.reset_election, scripts.rebuild):
            monkeypatch.setattr(command, "redis_from_settings", self.redis)

    def redis(self, settings: Any, **options: Any) -> Any:
        return fakeredis.FakeAsyncRedis(server=self.server)

    def store(self, election: str = ELECTION) -> TallyStore:
        return TallyStore(self.redis(None), election, "", night().register)

    async def seats_tallied(self) -> int:
        return await self.store().seats_tallied()

    def tally(self, seats: int) -> None:
        """The first `seats` declarations of the night applied, as a worker would."""
        asyncio.run(apply_batch(self.store(), pending(night().declarations[:seats])))


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(monkeypatch)
    console.tally(2)
    return console


def intended_then(
    console: Console, stage: AuditStage, action: AuditAction
) -> tuple[AuditRecord, AuditRecord]:
    """The command's two records, checked to be one action by the operator on the election."""
    intended, outcome = console.kafka.records
    assert (intended.stage, outcome.stage) == (AuditStage.INTENDED, stage)
    assert intended.action_id == outcome.action_id
    assert console.kafka.keys == [intended.action_id.encode()] * 2
    for record in (intended, outcome):
        assert (record.action, record.who, record.role, record.target) == (
            action,
            f"console:{OPERATOR}",
            Role.ADMIN,
            ELECTION,
        )
        assert record.election_id == ELECTION
        assert record.rehearsal == (get_settings().mode == "rehearsal")
    assert intended.before == outcome.before == {"seats_tallied": 2, "sequence": 2}
    return intended, outcome


def test_a_reset_is_intended_with_the_state_before_then_done_with_the_keys_removed(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scripts.reset_election.main(["--election", ELECTION]) == 0
    printed = capsys.readouterr().out
    intended, done = intended_then(console, AuditStage.DONE, AuditAction.RESET)
    assert intended.after is None and done.after == {"removed_keys": 9}
    assert printed.startswith("removed 9 keys of election:{parl.2024-07-04}:")
    # The intent went while both seats were still there; the outcome once they were gone.
    assert console.kafka.witnessed == [2, 0]


def test_a_reset_of_another_election_is_on_that_elections_record(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scripts.reset_election.main(["--election", "parl.2019-12-12"]) == 0
    intended, done = console.kafka.records
    assert {(r.election_id, r.target) for r in (intended, done)} == {
        ("parl.2019-12-12", "parl.2019-12-12")
    }
    assert intended.before == {"seats_tallied": 0, "sequence": 0}
    assert asyncio.run(console.seats_tallied()) == 2, "the other election's state was touched"


@pytest.mark.parametrize("how", ["kafka_down", "refusing"])
def test_a_reset_whose_intent_is_not_written_removes_nothing_and_exits_1(
    console: Console, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    setattr(console.kafka, how, True)
    assert scripts.reset_election.main(["--election", ELECTION]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"election-reset: {NOT_RECORDED} (")
    assert captured.out == "" and console.kafka.records == []
    assert asyncio.run(console.seats_tallied()) == 2


def test_a_reset_that_fails_midway_is_failed_on_the_record_and_exits_1(
    console: Console, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def read_only(store: TallyStore) -> int:
        raise ReadOnlyError("You can't write against a read only replica.")

    monkeypatch.setattr(scripts.reset_election, "reset_election", read_only)
    assert scripts.reset_election.main(["--election", ELECTION]) == 1
    _, failed = intended_then(console, AuditStage.FAILED, AuditAction.RESET)
    assert failed.detail == "ReadOnlyError: You can't write against a read only replica."
    assert capsys.readouterr().err == (
        "election-reset: ReadOnlyError: You can't write against a read only replica.\n"
    )


class Rebuild:
    """Stands in for the rebuild from Kafka: the state wiped and four seats applied."""

    def __init__(self, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
        self.console = console
        self.ran = False
        monkeypatch.setattr(scripts.rebuild, "rebuild", self)

    async def __call__(
        self, store: TallyStore, settings: Settings, register: Register
    ) -> RebuildReport:
        self.ran = True
        await store.reset()
        await apply_batch(store, pending(night().declarations[:4]))
        return RebuildReport(messages=4, partitions=1, seconds=0.12345)


def test_a_rebuild_is_intended_with_the_state_before_then_done_with_what_it_read(
    console: Console, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Rebuild(console, monkeypatch)
    assert scripts.rebuild.main(["--election", ELECTION]) == 0
    assert capsys.readouterr().out.startswith(f"rebuilt {ELECTION} from 4 messages")
    intended, done = intended_then(console, AuditStage.DONE, AuditAction.REBUILD)
    assert intended.after is None
    assert done.after == {"messages": 4, "seconds": 0.123, "seats_tallied": 4, "sequence": 4}
    assert console.kafka.witnessed == [2, 4]


@pytest.mark.parametrize("how", ["kafka_down", "refusing"])
def test_a_rebuild_whose_intent_is_not_written_never_starts_and_exits_1(
    console: Console,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    rebuild = Rebuild(console, monkeypatch)
    setattr(console.kafka, how, True)
    assert scripts.rebuild.main(["--election", ELECTION]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"election-rebuild: {NOT_RECORDED} (")
    assert captured.out == "" and console.kafka.records == []
    assert not rebuild.ran and asyncio.run(console.seats_tallied()) == 2


def test_a_rebuild_that_fails_midway_is_failed_on_the_record_and_exits_1(
    console: Console, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def held(store: TallyStore, settings: Settings, register: Register) -> RebuildReport:
        raise RuntimeError("another rebuild of election:{parl.2024-07-04}: is under way")

    monkeypatch.setattr(scripts.rebuild, "rebuild", held)
    assert scripts.rebuild.main(["--election", ELECTION]) == 1
    _, failed = intended_then(console, AuditStage.FAILED, AuditAction.REBUILD)
    assert failed.after is None
    assert (
        failed.detail == "RuntimeError: another rebuild of election:{parl.2024-07-04}: is under way"
    )
    assert capsys.readouterr().err.startswith("election-rebuild: RuntimeError: another rebuild")


def test_the_console_is_an_admin_named_after_the_os_user_or_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGNAME", "ro")
    assert (console_person().name, console_person().role) == ("console:ro", Role.ADMIN)

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert console_person().name == "console:unknown"
