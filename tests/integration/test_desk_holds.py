"""Held alerts through real workers, Kafka and Redis: an editor's approval reaches the alerts
topic and a webhook once, a kill neither, an edit arrives edited, all on the audit topic; a
worker killed while alerts are held, and again right after an approval, loses and repeats
nothing; a hand correction amends the seat's alerts and moves the state of the parties."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from schemas.alert import Alert, AlertType
from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from scripts.night_builder import Night
from scripts.replay import build_outgoing
from scripts.worker_process import WorkerProcess
from tests.integration.pipeline import DATA_DIR, Pipeline
from tests.integration.test_desk import give_token
from tests.integration.test_webhook_delivery import Subscriber
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK, declaration_of, swapped_top_two
from tests.unit.test_webhook_signing import new_secret

QUEUE = "/api/desk/queue"


def alerts_on_kafka(pipeline: Pipeline) -> list[Alert]:
    return [Alert.model_validate_json(value) for _, value, _ in pipeline.read("alerts")]


def queue(web: httpx.Client, token: str) -> dict[str, Any]:
    answer = web.get(QUEUE, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def held_ids(web: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    return {item["alert"]["alert_id"]: item for item in queue(web, token)["held"]}


def decide(web: httpx.Client, token: str, alert_id: str, verb: str, **body: str) -> httpx.Response:
    return web.post(
        f"/api/desk/alerts/{alert_id}/{verb}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def until(what: str, holds: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not holds():
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.2)


async def test_held_alerts_go_out_once_as_the_desk_decides_through_kills_and_a_correction(
    pipeline: Pipeline, night: Night
) -> None:
    secret = new_secret()
    subscriber = Subscriber(secret)
    server = await subscriber.serve()
    env = {
        **pipeline.env(),
        "ELECTION_DESK_AUTO_RELEASE_S": "0",  # nobody but an editor sends a held alert
        "ELECTION_DESK_ALERT_POLICY": '{"cabinet_minister_defeated": "hold"}',
        "ELECTION_WEBHOOK_REHEARSAL_URLS": orjson.dumps([str(server.make_url("/hook"))]).decode(),
        "ELECTION_WEBHOOK_SECRETS": orjson.dumps([secret]).decode(),
    }
    try:
        editor = await asyncio.to_thread(give_token, env, "ed", "editor")
        # The receiver answers on this loop while the night runs on a thread of its own.
        outcome = await asyncio.to_thread(
            run_the_night, pipeline, night, env, editor, lambda: list(subscriber.verified)
        )
    finally:
        await server.close()

    truss, sunak, edited, after_crash = (
        outcome[name] for name in ("truss", "sunak", "edited", "after_crash")
    )
    alerts = alerts_on_kafka(pipeline)
    on_kafka = Counter(alert.alert_id for alert in alerts)
    # Approved: once on the topic and at the webhook; killed: at neither. The last approval
    # was cut by a kill -9 at once: a delivery the dead worker made and had not recorded is
    # made again (webhooks are at least once), under the same webhook-id, which the receiver
    # checked is the alert's id: once for a receiver that drops a webhook-id seen before.
    for alert_id in (truss, edited, after_crash):
        assert on_kafka[alert_id] == 1, alert_id
    assert [subscriber.verified.count(alert_id) for alert_id in (truss, edited)] == [1, 1]
    assert subscriber.verified.count(after_crash) in (1, 2)
    assert on_kafka[sunak] == 0 and sunak not in subscriber.verified
    assert max(on_kafka.values()) == 1  # nothing twice, held or not
    # The edit as edited, everywhere.
    [edited_alert] = [alert for alert in alerts if alert.alert_id == edited]
    assert edited_alert.headline == outcome["new_headline"]
    [edited_body] = [body for body in subscriber.bodies if body["alert_id"] == edited]
    assert edited_body["headline"] == outcome["new_headline"]
    # Still held at the end: the rest of the cabinet, none of them on the topic.
    assert outcome["still_held"] and not set(outcome["still_held"]) & set(on_kafka)
    # The correction amended Truss's defeat like a feed correction, and it went out (the
    # amendment of an approved alert is not held); the state of the parties moved.
    amendments = [alert for alert in alerts if truss in alert.supersedes]
    assert amendments and amendments[0].constituency_id == SOUTH_WEST_NORFOLK
    before, after = outcome["seats_before"], outcome["seats_after"]
    assert (after["Con"] - before["Con"], after["Lab"] - before["Lab"]) == (1, -1)

    records = [AuditRecord.model_validate_json(value) for _, value, _ in pipeline.read("audit")]
    desk = [
        (r.action, r.stage, r.target)
        for r in records
        if r.action in {AuditAction.APPROVE, AuditAction.EDIT, AuditAction.KILL}
    ]
    assert desk == [
        (AuditAction.APPROVE, AuditStage.INTENDED, truss),
        (AuditAction.APPROVE, AuditStage.DONE, truss),
        (AuditAction.KILL, AuditStage.INTENDED, sunak),
        (AuditAction.KILL, AuditStage.DONE, sunak),
        (AuditAction.EDIT, AuditStage.INTENDED, edited),
        (AuditAction.EDIT, AuditStage.DONE, edited),
        (AuditAction.APPROVE, AuditStage.INTENDED, after_crash),
        (AuditAction.APPROVE, AuditStage.DONE, after_crash),
    ]
    assert all(
        (r.who, r.role) == ("ed", Role.EDITOR)
        for r in records
        if r.action in {AuditAction.APPROVE, AuditAction.EDIT, AuditAction.KILL}
    )
    [edit_intent] = [
        r for r in records if r.action is AuditAction.EDIT and r.stage is AuditStage.INTENDED
    ]
    assert edit_intent.before is not None and edit_intent.after is not None
    assert edit_intent.before["held"]["alert"]["headline"] == outcome["old_headline"]
    assert edit_intent.after["alert"]["headline"] == outcome["new_headline"]


def run_the_night(
    pipeline: Pipeline,
    night: Night,
    env: dict[str, str],
    editor: str,
    delivered: Callable[[], list[str]],
) -> Any:
    """The replay with the desk at work, and two kill -9s: what the test checks after.
    `delivered`: the alert ids the webhook receiver has verified so far."""
    outcome: dict[str, Any] = {}
    feed = build_outgoing(DATA_DIR)
    worker = WorkerProcess("streams.worker:app", env, name="desk-holds").start()
    try:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(feed)
        pipeline.wait_until_published(night.register, timeout=300)
        outcome["seats_before"] = {p.party: p.seats for p in pipeline.state(night.register).parties}
        with httpx.Client(base_url=worker.base_url, timeout=30) as web:
            held = held_ids(web, editor)
            by_type: dict[str, list[str]] = {}
            for alert_id, item in held.items():
                by_type.setdefault(item["alert"]["type"], []).append(alert_id)
            [truss] = by_type[AlertType.FORMER_PRIME_MINISTER_DEFEATED]
            [sunak] = by_type[AlertType.PRIME_MINISTER_RESULT]
            cabinet = sorted(by_type[AlertType.CABINET_MINISTER_DEFEATED])
            assert len(cabinet) >= 3, cabinet
            assert {held[i]["reason"] for i in held} == {"policy"}
            assert all(held[i]["release_at"] is None for i in held)
            outcome.update(truss=truss, sunak=sunak, edited=cabinet[0])
            outcome["old_headline"] = held[cabinet[0]]["alert"]["headline"]
            outcome["new_headline"] = "Edited on the desk: " + outcome["old_headline"][:100]

            assert decide(web, editor, truss, "approve").json()["decision"] == "approve"
            assert (
                decide(web, editor, sunak, "kill", reason="wait for the count").status_code == 200
            )
            answer = decide(web, editor, cabinet[0], "approve", headline=outcome["new_headline"])
            assert answer.json()["decision"] == "edit", answer.text
            again = decide(web, editor, truss, "kill")
            assert again.status_code == 409
            assert again.json()["decision"]["by"] == "ed"
            assert again.json()["decision"]["action"] == "approve"
        until(
            "Truss's and the edited alert at the webhook",
            lambda: {truss, cabinet[0]} <= set(delivered()),
        )
        # kill -9 while alerts are held: none lost.
        worker.kill()
        worker = WorkerProcess("streams.worker:app", env, name="desk-holds-restarted").start()
        worker.wait_for_log("Ready", timeout=120)
        with httpx.Client(base_url=worker.base_url, timeout=30) as web:
            assert set(held_ids(web, editor)) == set(cabinet[1:])
            # Approved, then killed before the publisher may have sent it: sent once anyway.
            after_crash = cabinet[1]
            assert decide(web, editor, after_crash, "approve").status_code == 200
            worker.kill()
        worker = WorkerProcess("streams.worker:app", env, name="desk-holds-again").start()
        worker.wait_for_log("Ready", timeout=120)
        with httpx.Client(base_url=worker.base_url, timeout=30) as web:
            assert decide(web, editor, after_crash, "approve").status_code == 409
            outcome["after_crash"] = after_crash
            # A hand correction of South West Norfolk: Truss elected after all.
            entry = orjson.loads(
                swapped_top_two(declaration_of(SOUTH_WEST_NORFOLK)).model_dump_json()
            )
            del entry["source"], entry["revision"]
            sent = web.post(
                "/api/desk/declarations", json=entry, headers={"Authorization": f"Bearer {editor}"}
            )
            assert sent.status_code == 202, sent.text
            until(
                "the amendment of Truss's defeat",
                lambda: any(truss in a.supersedes for a in alerts_on_kafka(pipeline)),
            )
            pipeline.wait_until_published(night.register, timeout=120)
            outcome["seats_after"] = {
                p.party: p.seats for p in pipeline.state(night.register).parties
            }
            outcome["still_held"] = sorted(held_ids(web, editor))
            # The approval the kill cut short reaches the webhook from the worker after it.
            until("the last approval at the webhook", lambda: after_crash in delivered())
    finally:
        worker.stop()
    return outcome
