"""The whole 2024 night through the real broker, real worker processes and real Redis."""

from __future__ import annotations

import base64
from collections import Counter

import orjson

from schemas.rejection import Rejection
from scripts.alerts_of_the_night import alerts_of_the_night, tracking_alerts_of_the_night
from scripts.night_builder import Night
from scripts.replay import build_outgoing
from streams.settings import Settings
from tests.integration.pipeline import (
    DATA_DIR,
    Pipeline,
    assert_official_result,
    assert_published_once,
    last_assignment,
)
from tests.integration.story import assert_the_story


def test_the_clean_night_ends_at_the_official_result(pipeline: Pipeline, night: Night) -> None:
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        report = pipeline.send(build_outgoing(DATA_DIR))
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    counters = pipeline.counters()
    assert counters["validation:accepted"] == report.total == 651
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651

    results = pipeline.read("results")
    assert len(results) == 650
    assert {key for key, _, _ in results} == {
        ons_id.encode() for ons_id in night.register.constituencies
    }
    snapshots = [orjson.loads(value) for _, value, _ in pipeline.read("state")]
    assert [s["sequence"] for s in snapshots] == sorted(s["sequence"] for s in snapshots)
    assert snapshots[-1]["seats_declared"] == 650
    # Issue 23: every snapshot projects the final seats, beside the exit poll, and with every
    # seat declared the projection is the result.
    assert all(snapshot["projection"] is not None for snapshot in snapshots)
    final = snapshots[-1]
    projected = {p["party"]: p["seats"] for p in final["projection"]["parties"]}
    assert projected == {p["party"]: p["seats"] for p in final["parties"] if p["seats"]}
    assert projected["Lab"] == 411
    polled = {p["party"]: p["exit_poll"] for p in final["projection"]["parties"]}
    assert polled["Lab"] == 410 and polled["Con"] == 131

    alerts = assert_published_once(pipeline)
    by_type = Counter(alert["type"] for alert in alerts)
    truss = next(a for a in alerts if a["type"] == "former_prime_minister_defeated")
    assert truss["constituency_name"] == "South West Norfolk"
    assert "Terry Jermy" in truss["headline"] and "630" in truss["headline"]
    defeated = {a["person_id"] for a in alerts if a["type"] == "cabinet_minister_defeated"}
    assert {2595, 1692, 4176, 6138} <= defeated  # Shapps, Mordaunt, Chalk, Keegan
    majority = [a for a in alerts if a["type"] == "majority_won"]
    assert len(majority) == 1 and majority[0]["party"] == "Lab"
    assert by_type["party_leader_result"] >= 10
    assert by_type["exit_poll"] == by_type["first_declaration"] == by_type["last_declaration"] == 1
    # Issue 15, --speed max: the moments by declaration time, and nothing amended.
    assert_the_story(pipeline, night, clean=True)
    # None missing: exactly the alerts the same rules raise on the night in memory.
    policy = Settings().alert_policy()
    expected = alerts_of_the_night(DATA_DIR, DATA_DIR / "watchlist.csv", policy)
    assert sorted(alert["alert_id"] for alert in alerts) == sorted(a.alert_id for a in expected)
    # Issue 23: the projection leaving the exit poll and coming back, on the newsroom topic
    # alone, at the seats the night's own order gives.
    newsroom = [orjson.loads(value) for _, value, _ in pipeline.read("newsroom")]
    tracked = [n for n in newsroom if n.get("message_type") == "alert"]
    assert [(a["alert_id"], a["constituency_id"]) for a in tracked] == [
        (a.alert_id, a.constituency_id) for a in tracking_alerts_of_the_night(Settings())
    ]
    assert [(a["type"], a["party"], a["figures"]["seats_with_figures"]) for a in tracked] == [
        ("projection_departs_exit_poll", "Con", 100),
        ("projection_departs_exit_poll", "LD", 100),
        ("projection_departs_exit_poll", "Lab", 100),
        ("projection_departs_exit_poll", "SNP", 100),
        ("projection_back_in_line", "SNP", 165),
        ("projection_back_in_line", "LD", 171),
        ("projection_back_in_line", "Lab", 558),
        ("projection_back_in_line", "Con", 582),
    ]
    assert {a["audience"] for a in tracked} == {"newsroom"}
    assert not [a for a in alerts if a["type"].startswith("projection_")]


def test_chaos_gives_the_same_final_state_and_dead_letters_every_bad_message(
    pipeline: Pipeline, night: Night
) -> None:
    feed = build_outgoing(DATA_DIR, chaos_seed=7)
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        report = pipeline.send(feed)
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)

    dead = [Rejection.model_validate_json(value) for _, value, _ in pipeline.read("dead_letter")]
    must_reject = Counter(item.value for item in feed if item.must_be_rejected)
    rejected = Counter(
        base64.b64decode(r.original_b64) for r in dead if r.reason != "revision_conflict"
    )
    assert rejected == must_reject
    assert all(r.detail for r in dead)

    counters = pipeline.counters()
    validated = sum(n for k, n in counters.items() if k.startswith("validation:"))
    assert validated == report.total
    tallied = sum(n for k, n in counters.items() if k.startswith("tally:"))
    assert tallied == counters["validation:accepted"]
    # Issue 15, --chaos 7: the same moments; corrections may amend on the way there.
    assert_the_story(pipeline, night, clean=False)


def test_two_workers_give_the_same_state_as_one(pipeline: Pipeline, night: Night) -> None:
    with pipeline.worker("first") as first, pipeline.worker("second") as second:
        first.wait_for_log("Ready", timeout=120)
        second.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR, chaos_seed=3))
        pipeline.wait_until_published(night.register)
        assignments = [last_assignment(w.log()) for w in (first, second)]
    assert_official_result(pipeline, night)
    assert_published_once(pipeline)
    # Both took part: each one's final assignment holds some of the declarations' partitions.
    assert all(pipeline.topics["declarations"] in a for a in assignments), assignments
    # Issue 15, two workers (each applying its partitions in its own order): the same moments.
    assert_the_story(pipeline, night, clean=False)


def test_a_worker_killed_mid_night_and_restarted_loses_and_repeats_nothing(
    pipeline: Pipeline, night: Night
) -> None:
    feed = build_outgoing(DATA_DIR, chaos_seed=5)
    half = len(feed) // 2
    with pipeline.worker("doomed") as doomed:
        doomed.wait_for_log("Ready", timeout=120)
        pipeline.send(feed[:half])
        # Pull the plug mid-flight: seats tallied, outputs queued but not all on Kafka yet.
        pipeline.wait_until_published(night.register, seats=150, timeout=120, published=False)
        doomed.kill()
    pipeline.send(feed[half:])
    with pipeline.worker("restarted") as restarted:
        restarted.wait_for_log("Ready", timeout=120)
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert Counter(a["type"] for a in alerts)["majority_won"] == 1
    # The newsroom's alerts (issue 23) too: each once, across the crash.
    newsroom = [orjson.loads(value) for _, value, _ in pipeline.read("newsroom")]
    told = [n["alert_id"] for n in newsroom if n.get("message_type") == "alert"]
    assert told and len(told) == len(set(told))
    # Issue 15, a worker killed mid-night and restarted on the rest: the same moments.
    assert_the_story(pipeline, night, clean=False)
