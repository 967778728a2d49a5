"""Alerts held on the desk: which wait, why, and each decision on them taken once, on record."""

from __future__ import annotations

import datetime as dt

import fakeredis
import orjson
import pytest

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.audit import AuditAction, AuditStage, Role
from schemas.desk import DeskAction
from streams.pipeline.audit import AuditNotWritten
from streams.pipeline.desk_decisions import (
    AUTO_RELEASE,
    DecisionRefused,
    Edits,
    decide,
    release_due,
)
from streams.rules.desk import Person
from streams.rules.holds import (
    NO_HOLDS,
    HoldPolicyRefused,
    hold_conditions,
    hold_policy,
    release_at,
)
from streams.store.holds import DeskHolds
from streams.store.keys import ANNOUNCED_IDS, OUTBOX, election_namespace
from streams.store.outbox import Outbox, Output, hold_text
from tests.unit.test_audit import Kafka, trail

NS = election_namespace("test:", "parl.2024-07-04")
TRUSS = "E14001496"
ED = Person("ed", Role.EDITOR)
ANNA = Person("anna", Role.EDITOR)


def alert(
    alert_id: str,
    alert_type: AlertType = AlertType.FORMER_PRIME_MINISTER_DEFEATED,
    supersedes: tuple[str, ...] = (),
    constituency_id: str | None = TRUSS,
    audience: str = "public",
) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id,
            "election_id": "parl.2024-07-04",
            "rehearsal": True,
            "type": alert_type,
            "priority": AlertPriority.FLASH,
            "headline": f"Headline of {alert_id}",
            "body": "Body",
            "occurred_at": "2024-07-05T03:45:00+01:00",
            "constituency_id": constituency_id,
            "supersedes": list(supersedes),
            "audience": audience,
        }
    )


def output(made: Alert, release_after_s: float | None = 20.0) -> Output:
    policy = hold_policy({}, release_after_s or 0, rehearsal=True)
    return Output(
        output_id=f"alert:{made.alert_id}",
        topic="alerts",
        key=made.alert_id,
        value=made.model_dump_json().encode(),
        hold=hold_text(hold_conditions(made, policy), policy.release_after_s(made)),
    )


@pytest.fixture
def redis() -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis()


@pytest.fixture
def outbox(redis: fakeredis.FakeAsyncRedis) -> Outbox:
    return Outbox(redis, NS)


@pytest.fixture
def holds(redis: fakeredis.FakeAsyncRedis) -> DeskHolds:
    return DeskHolds(redis, NS)


async def outbox_ids(outbox: Outbox) -> list[str]:
    return [item.output.output_id for item in await outbox.read(after=0)]


# The rules


def test_people_of_note_flash_alerts_wait_by_default_and_the_rest_go() -> None:
    policy = hold_policy({}, None, rehearsal=False)
    assert set(policy.held) == {
        AlertType.FORMER_PRIME_MINISTER_DEFEATED,
        AlertType.PRIME_MINISTER_RESULT,
    }
    assert policy.auto_release_s is None  # live: only an editor sends them
    assert hold_policy({}, None, rehearsal=True).auto_release_s == 20.0
    assert hold_policy({}, 0, rehearsal=True).auto_release_s is None


def test_a_type_can_be_held_with_its_own_time_or_let_go() -> None:
    policy = hold_policy(
        {"cabinet_minister_defeated": "hold:120", "prime_minister_result": "auto"}, 30, False
    )
    assert policy.release_after_s(alert("a", AlertType.CABINET_MINISTER_DEFEATED)) == 120
    assert policy.release_after_s(alert("b")) == 30
    assert AlertType.PRIME_MINISTER_RESULT not in policy.held


@pytest.mark.parametrize(
    "overrides",
    [{"no_such_type": "hold"}, {"seat_gain": "later"}, {"seat_gain": "hold:0"}, {"x": "auto"}],
)
def test_a_policy_naming_an_unknown_type_or_policy_is_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(HoldPolicyRefused):
        hold_policy(overrides, None, True)


def test_what_would_hold_an_alert_strongest_first() -> None:
    amendment = alert("b", AlertType.AMENDED, supersedes=("a",))
    policy = hold_policy({}, None, True)
    assert hold_conditions(amendment, policy) == [f"seat:{TRUSS}", "killed:a", "held:a"]
    assert hold_conditions(alert("a"), policy) == [f"seat:{TRUSS}", "*"]
    assert hold_conditions(alert("n", audience="newsroom"), policy) == []
    assert hold_conditions(alert("x", AlertType.MAJORITY_WON, constituency_id=None), NO_HOLDS) == []


def test_only_a_type_held_or_an_amendment_of_a_held_alert_goes_by_itself() -> None:
    held_at = dt.datetime(2024, 7, 5, 3, 0, tzinfo=dt.UTC)
    assert release_at(held_at, "policy", 20) == held_at + dt.timedelta(seconds=20)
    assert release_at(held_at, "amends_held", 20) is not None
    assert release_at(held_at, "seat_not_called", 20) is None
    assert release_at(held_at, "amends_killed", 20) is None
    assert release_at(held_at, "policy", None) is None


# Held in the announce step


async def test_a_held_alert_waits_on_the_desk_not_the_outbox(
    outbox: Outbox, holds: DeskHolds
) -> None:
    truss, gain = alert("a"), alert("g", AlertType.SEAT_GAIN)
    queued, _ = await outbox.announce_many([(1, [output(truss), output(gain)])])
    assert [q.output.output_id for q in queued] == ["alert:g"]
    [held] = await holds.held()
    assert held.alert == truss and held.reason == "policy"
    assert held.release_at == held.held_at + dt.timedelta(seconds=20)
    # Told again (a publisher taking over): still one hold, nothing queued.
    queued, _ = await outbox.announce_many([(0, [output(truss)])])
    assert queued == [] and len(await holds.held()) == 1


async def test_approved_once_it_is_queued_once_whoever_clicks_again(
    outbox: Outbox, holds: DeskHolds
) -> None:
    kafka = Kafka()
    await outbox.announce_many([(1, [output(alert("a"))])])
    action = await decide(holds, trail(kafka), ED, "a", "approve")
    assert action.action == "approve" and action.by == "ed"
    assert await outbox_ids(outbox) == ["alert:a"]
    with pytest.raises(DecisionRefused) as again:
        await decide(holds, trail(kafka), ANNA, "a", "kill")
    assert again.value.status == 409 and again.value.earlier is not None
    assert again.value.earlier.by == "ed"
    assert await outbox_ids(outbox) == ["alert:a"]
    stages = [(r.action, r.stage, r.who) for _, r in kafka.records]
    assert stages == [
        (AuditAction.APPROVE, AuditStage.INTENDED, "ed"),
        (AuditAction.APPROVE, AuditStage.DONE, "ed"),
    ]  # anna's click found it decided before anything was intended


async def test_a_decision_that_loses_the_race_in_redis_takes_no_effect(
    outbox: Outbox, holds: DeskHolds
) -> None:
    """Both editors found it held; the Lua step lets the first through and not the second."""
    await outbox.announce_many([(1, [output(alert("a"))])])
    at = dt.datetime(2024, 7, 5, 3, 0, tzinfo=dt.UTC)
    first = DeskAction(action="approve", by="ed", at=at, alert_id="a")
    second = DeskAction(action="kill", by="anna", at=at, alert_id="a")
    taken = await holds.decide(first, kill=False, sent=alert("a"))
    lost = await holds.decide(second, kill=True, sent=None)
    assert taken.taken and taken.sequence == 1
    assert not lost.taken and lost.earlier == first
    assert await outbox_ids(outbox) == ["alert:a"]
    assert await holds.decision_on("a") == first


async def test_an_edit_goes_out_edited_and_the_record_keeps_the_original(
    outbox: Outbox, holds: DeskHolds
) -> None:
    kafka = Kafka()
    await outbox.announce_many([(1, [output(alert("a"))])])
    action = await decide(holds, trail(kafka), ED, "a", "approve", Edits(headline="Truss out"))
    assert (action.action, action.headline, action.original_headline) == (
        "edit",
        "Truss out",
        "Headline of a",
    )
    [sent] = await outbox.read(after=0)
    assert orjson.loads(sent.output.value)["headline"] == "Truss out"
    intended = kafka.records[0][1]
    assert intended.action == AuditAction.EDIT
    assert intended.before is not None and intended.after is not None
    assert intended.before["held"]["alert"]["headline"] == "Headline of a"
    assert intended.after["alert"]["headline"] == "Truss out"


async def test_an_edit_that_breaks_the_alert_contract_is_refused_before_the_record(
    outbox: Outbox, holds: DeskHolds
) -> None:
    kafka = Kafka()
    await outbox.announce_many([(1, [output(alert("a"))])])
    with pytest.raises(DecisionRefused) as refused:
        await decide(holds, trail(kafka), ED, "a", "approve", Edits(headline="x" * 141))
    assert refused.value.status == 422 and "headline" in refused.value.detail
    assert kafka.records == [] and len(await holds.held()) == 1


async def test_a_killed_alert_never_goes_and_what_amends_it_waits_with_no_clock(
    outbox: Outbox, holds: DeskHolds
) -> None:
    kafka = Kafka()
    await outbox.announce_many([(1, [output(alert("a"))])])
    await decide(holds, trail(kafka), ED, "a", "kill", reason="not confirmed")
    amendment = alert("b", AlertType.AMENDED, supersedes=("a",))
    await outbox.announce_many([(2, [output(alert("a")), output(amendment)])])
    assert await outbox_ids(outbox) == []
    [held] = await holds.held()
    assert (held.alert.alert_id, held.reason, held.release_at) == ("b", "amends_killed", None)


async def test_an_amendment_of_a_held_alert_waits_behind_it(
    outbox: Outbox, holds: DeskHolds
) -> None:
    await outbox.announce_many([(1, [output(alert("a"))])])
    amendment = alert("b", AlertType.AMENDED, supersedes=("a",))
    await outbox.announce_many([(2, [output(amendment)])])
    reasons = {held.alert.alert_id: held.reason for held in await holds.held()}
    assert reasons == {"a": "policy", "b": "amends_held"}


async def test_a_seat_whose_call_is_held_holds_every_alert_of_it(
    outbox: Outbox, holds: DeskHolds
) -> None:
    action_at = dt.datetime(2024, 7, 5, 3, 0, tzinfo=dt.UTC)
    hold = DeskAction(action="override", by="ed", at=action_at, constituency_id=TRUSS)
    assert await holds.hold_call(TRUSS, hold, True)
    assert not await holds.hold_call(TRUSS, hold, True)  # held already
    gain = alert("g", AlertType.SEAT_GAIN)
    elsewhere = alert("h", AlertType.SEAT_GAIN, constituency_id="E14000530")
    await outbox.announce_many([(1, [output(gain), output(elsewhere)])])
    assert await outbox_ids(outbox) == ["alert:h"]
    [held] = await holds.held()
    assert (held.alert.alert_id, held.reason, held.release_at) == ("g", "seat_not_called", None)
    state = await holds.state({TRUSS: "South West Norfolk"})
    assert [c.constituency_name for c in state.calls_held] == ["South West Norfolk"]
    assert [a.action for a in state.actions] == ["override"]
    assert await holds.hold_call(TRUSS, hold, False)
    queued, _ = await outbox.announce_many([(2, [output(alert("g2", AlertType.SEAT_GAIN))])])
    assert [q.output.output_id for q in queued] == ["alert:g2"]


async def test_after_a_rebuild_what_the_desk_decided_stands(
    redis: fakeredis.FakeAsyncRedis, outbox: Outbox, holds: DeskHolds
) -> None:
    """A rebuild empties the outbox and its ids but keeps the desk's keys: an alert sent
    edited and not yet on Kafka goes again as edited, once; a killed one is not held again."""
    kafka = Kafka()
    edited, killed = alert("a"), alert("k", AlertType.PRIME_MINISTER_RESULT)
    await outbox.announce_many([(1, [output(edited), output(killed)])])
    await decide(holds, trail(kafka), ED, "a", "approve", Edits(headline="Edited"))
    await decide(holds, trail(kafka), ED, "k", "kill")
    await redis.delete(NS + OUTBOX, NS + ANNOUNCED_IDS, NS + "publisher:announced")
    queued, _ = await outbox.announce_many([(1, [output(edited), output(killed)])])
    assert [orjson.loads(q.output.value)["headline"] for q in queued] == ["Edited"]
    assert await holds.held() == []
    queued, _ = await outbox.announce_many([(0, [output(edited)])])
    assert queued == []


async def test_the_clock_sends_only_what_is_due_and_releasable(
    outbox: Outbox, holds: DeskHolds
) -> None:
    kafka = Kafka()
    await outbox.announce_many([(1, [output(alert("a"), release_after_s=20)])])
    await outbox.announce_many([(2, [output(alert("b"), release_after_s=None)])])
    [first, _] = await holds.held()
    assert await release_due(holds, trail(kafka), first.held_at + dt.timedelta(seconds=5)) == 0
    later = first.held_at + dt.timedelta(seconds=21)
    assert await release_due(holds, trail(kafka), later) == 1
    assert await outbox_ids(outbox) == ["alert:a"]
    assert [h.alert.alert_id for h in await holds.held()] == ["b"]  # waits for an editor
    done = kafka.records[-1][1]
    assert (done.action, done.stage, done.who) == (
        AuditAction.AUTO_RELEASE,
        AuditStage.DONE,
        AUTO_RELEASE.name,
    )


async def test_nothing_held_under_an_id_is_a_404(holds: DeskHolds) -> None:
    with pytest.raises(DecisionRefused) as refused:
        await decide(holds, trail(Kafka()), ED, "nope", "approve")
    assert (refused.value.status, refused.value.error) == (404, "not_held")


async def test_no_intent_on_record_means_no_decision(outbox: Outbox, holds: DeskHolds) -> None:
    kafka = Kafka()
    kafka.refusing = True
    await outbox.announce_many([(1, [output(alert("a"))])])
    with pytest.raises(AuditNotWritten):
        await decide(holds, trail(kafka), ED, "a", "approve")
    assert len(await holds.held()) == 1 and await outbox_ids(outbox) == []


async def test_the_outbox_and_the_holds_to_go_are_read_together(
    outbox: Outbox, holds: DeskHolds
) -> None:
    await outbox.announce_many([(1, [output(alert("a"), release_after_s=20)])])
    await outbox.announce_many([(2, [output(alert("b"), release_after_s=None)])])
    await outbox.announce_many([(3, [output(alert("g", AlertType.SEAT_GAIN))])])
    progress, due = await holds.progress_with_holds()
    assert (progress.announced, progress.queued, progress.published, due) == (3, 1, 0, 1)
    [first, _] = await holds.held()
    await release_due(holds, trail(Kafka()), first.held_at + dt.timedelta(seconds=21))
    progress, due = await holds.progress_with_holds()
    assert (progress.queued, due) == (2, 0)  # released and queued in one step
