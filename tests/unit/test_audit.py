"""The audit trail: the intent on Kafka before the action, its outcome after, under one id."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson
import pytest

from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from streams.pipeline import audit
from streams.pipeline.audit import AuditNotWritten, AuditTrail
from streams.rules.desk import Person
from tests.unit.test_generated_schemas import _errors

ELECTION = "parl.2024-07-04"
ED = Person("ed", Role.EDITOR)
NOON = dt.datetime(2024, 7, 5, 12, 0, tzinfo=dt.UTC)


class Kafka:
    """Takes records until told to refuse; keeps them as (key, record)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, AuditRecord]] = []
        self.refusing = False

    async def send(self, key: bytes, value: bytes) -> None:
        if self.refusing:
            raise ConnectionError("no broker")
        self.records.append((key, AuditRecord.model_validate_json(value)))


def trail(kafka: Kafka, rehearsal: bool = True) -> AuditTrail:
    return AuditTrail(kafka.send, ELECTION, rehearsal, now=lambda: NOON)


async def test_an_action_is_intended_on_kafka_before_it_runs_then_done() -> None:
    kafka = Kafka()
    ran_after: list[int] = []
    async with trail(kafka, rehearsal=False).acting(
        AuditAction.CORRECTION, ED, "E14001497", before={"on_air": "pa"}, after={"revision": 1}
    ) as outcome:
        ran_after.append(len(kafka.records))
        outcome.after = {"revision": 1, "kafka": {"offset": 7}}
    assert ran_after == [1]
    (key, intended), (again, done) = kafka.records
    assert key == again == intended.action_id.encode() == done.action_id.encode()
    assert intended.model_dump(exclude={"stage", "after"}) == done.model_dump(
        exclude={"stage", "after"}
    )
    assert (intended.stage, intended.after) == (AuditStage.INTENDED, {"revision": 1})
    assert (done.stage, done.after) == (AuditStage.DONE, {"revision": 1, "kafka": {"offset": 7}})
    assert (done.who, done.role, done.action, done.target) == (
        "ed",
        Role.EDITOR,
        AuditAction.CORRECTION,
        "E14001497",
    )
    assert (done.election_id, done.rehearsal, done.at) == (ELECTION, False, NOON)
    assert done.before == {"on_air": "pa"} and done.detail is None


async def test_an_action_that_raises_is_failed_on_the_record_and_still_raises() -> None:
    kafka = Kafka()
    with pytest.raises(RuntimeError, match="Redis went away"):
        async with trail(kafka).acting(AuditAction.RESET, ED, ELECTION):
            raise RuntimeError("Redis went away")
    intended, failed = (record for _, record in kafka.records)
    assert failed.stage == AuditStage.FAILED and failed.action_id == intended.action_id
    assert failed.detail == "RuntimeError: Redis went away"


async def test_an_action_whose_intent_kafka_refuses_never_runs() -> None:
    kafka = Kafka()
    kafka.refusing = True
    ran = False
    with pytest.raises(AuditNotWritten, match="no broker"):
        async with trail(kafka).acting(AuditAction.RESET, ED, ELECTION):
            ran = True
    assert not ran and kafka.records == []


async def test_an_intent_kafka_does_not_acknowledge_in_time_is_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hanging(key: bytes, value: bytes) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(audit, "WRITE_TIMEOUT_S", 0.01)
    with pytest.raises(AuditNotWritten, match="TimeoutError"):
        await AuditTrail(hanging, ELECTION, True).intend(AuditAction.RESET, ED, ELECTION)


async def test_an_outcome_kafka_refuses_is_logged_and_the_action_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka = Kafka()
    done: list[str] = []
    async with trail(kafka).acting(AuditAction.RESET, ED, ELECTION):
        kafka.refusing = True
        done.append("reset")
    assert done == ["reset"]
    [(_, intended)] = kafka.records
    assert intended.stage == AuditStage.INTENDED
    assert f"the outcome of audit action {intended.action_id} was not recorded" in caplog.text


async def test_a_refusal_is_one_record_with_the_reason() -> None:
    kafka = Kafka()
    entry: dict[str, Any] = {"constituency_id": "E14001497", "revision": 0}
    await trail(kafka).refuse(
        AuditAction.CORRECTION, ED, "E14001497", "revision must be at least 1", after=entry
    )
    [(_, refused)] = kafka.records
    assert (refused.stage, refused.detail, refused.after) == (
        AuditStage.REFUSED,
        "revision must be at least 1",
        entry,
    )


async def test_every_record_fits_the_published_audit_schema() -> None:
    kafka = Kafka()
    async with trail(kafka).acting(
        AuditAction.TOKEN_ADD, Person("console:root", Role.ADMIN), "ed", after={"role": "editor"}
    ):
        pass
    await trail(kafka).refuse(AuditAction.CORRECTION, ED, "unknown", "malformed JSON")
    for _, record in kafka.records:
        payload = orjson.loads(record.model_dump_json())
        assert _errors("audit", payload) == [], payload
        # Every field is always written, so a reader can rely on each one being there.
        assert _errors("audit", {k: v for k, v in payload.items() if k != "before"})
