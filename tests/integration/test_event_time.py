"""Issue 15: the night's moments follow when seats declared, not when their messages arrived.

Through real worker processes, Kafka and Redis. The story (first declaration Houghton and
Sunderland South at 23:17, majority for Labour delivered by Preston at 05:03, last
declaration Inverness, Skye and West Ross-shire on 6 July, and a final state as of that
declaration) is read from the topics by tests/integration/story.py. The clean night at
`--speed max`, `--chaos 7`, two workers and a worker killed mid-night are the runs of
test_night_pipeline.py, which assert the same story; here are the runs of their own.
"""

from __future__ import annotations

import datetime as dt

import pytest

from scripts.night_builder import Night
from scripts.replay import build_outgoing
from scripts.worker_process import WorkerProcess
from tests.integration.pipeline import DATA_DIR, Pipeline, assert_official_result
from tests.integration.story import (
    LONDON,
    MAJORITY_AT,
    PRESTON,
    alerts_in_order,
    assert_the_story,
    describe,
    moment,
    occurred,
)

BACKLOG_UNTIL = dt.datetime(2024, 7, 5, 6, 0, tzinfo=LONDON)  # `election-replay --until 06:00`


def test_at_3000_times_real_time_the_moments_follow_declaration_time(
    pipeline: Pipeline, night: Night
) -> None:
    # The night spans 22:00 Thursday to Saturday's Inverness declaration: about 53 s here.
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR), speed=3000.0)
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    assert_the_story(pipeline, night, clean=True)


def test_under_chaos_11_the_moments_follow_declaration_time(
    pipeline: Pipeline, night: Night
) -> None:
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR, chaos_seed=11))
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    assert_the_story(pipeline, night, clean=False)


@pytest.mark.parametrize("announce_max_changes", [None, 25], ids=["default", "25-a-tick"])
def test_a_worker_starting_on_a_backlog_tells_the_moments_by_declaration_time(
    pipeline: Pipeline, night: Night, announce_max_changes: int | None
) -> None:
    # The night up to 06:00 is on the topic before any worker runs (read late, but produced
    # in time order: nothing in it is truly late, so nothing may be amended either). With 25
    # changes a tick, the publisher reads the backlog over many announcements, and tells the
    # moments only once it has read up to where the partitions were: the same story.
    feed = build_outgoing(DATA_DIR)
    backlog = [item for item in feed if item.at <= BACKLOG_UNTIL]
    rest = [item for item in feed if item.at > BACKLOG_UNTIL]
    assert PRESTON in {item.key for item in backlog} and rest
    pipeline.send(backlog)
    env = pipeline.env()
    if announce_max_changes is not None:
        env["ELECTION_ANNOUNCE_MAX_CHANGES"] = str(announce_max_changes)
    with WorkerProcess("streams.worker:app", env, name="backlog") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(rest)
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    assert_the_story(pipeline, night, clean=True)


def test_a_seat_truly_late_amends_the_majority_it_delivered(
    pipeline: Pipeline, night: Night
) -> None:
    feed = build_outgoing(DATA_DIR)
    preston = [item for item in feed if item.key == PRESTON]
    assert len(preston) == 1
    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        # The whole clean night but Preston, and every output of it published.
        pipeline.send([item for item in feed if item.key != PRESTON])
        pipeline.wait_until_published(night.register, seats=649)

        # (Whether this clean feed, one seat short, amends nothing is the clean runs' check.)
        before = alerts_in_order(pipeline)
        told = [a for a in before if a["type"] == "majority_won"]
        assert len(told) == 1, describe(told)
        first_majority = told[0]
        shown = moment(before, "majority_won")
        assert shown.get("party") == "Lab"
        # Another seat delivers it, and no earlier than Preston did: it was Labour's 326th.
        assert shown.get("constituency_id") != PRESTON
        assert occurred(shown) >= MAJORITY_AT, describe([shown])

        # Preston's declaration arrives after the majority alert went out.
        pipeline.send(preston)
        pipeline.wait_until_published(night.register)

    alerts = alerts_in_order(pipeline)
    assert alerts[: len(before)] == before  # the topic only grew
    amendments = [
        a
        for a in alerts
        if a["type"] == "amended"
        and a.get("replaces_type") == "majority_won"
        and a.get("constituency_id") == PRESTON
        and first_majority["alert_id"] in (a.get("supersedes") or [])
    ]
    # One amendment, replacing the first majority alert and the one the apps show now.
    assert len(amendments) == 1, describe(alerts[len(before) :])
    assert shown["alert_id"] in amendments[0]["supersedes"], describe(amendments)
    majority = moment(alerts, "majority_won")
    assert majority == amendments[0]
    assert occurred(majority) == MAJORITY_AT
    assert_official_result(pipeline, night)
    # The rest of the story, and a final state still as of Inverness: a seat that came late
    # does not take the state's "as of" back to 05:03.
    assert_the_story(pipeline, night, clean=False)
