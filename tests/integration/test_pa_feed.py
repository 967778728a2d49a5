"""The 2024 night as PA files in a drop folder, through the ingest, a worker, Kafka and Redis."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from schemas.feed_refusal import FeedRefusal
from scripts.chaos import EXIT_POLL, clean_feed
from scripts.night_builder import Night
from scripts.pa_pack import folder_sender, pa_feed
from scripts.replay import replay
from streams.feeds.pa.mapping import load_feed_mapping
from tests.integration.pa_ingest import pa_ingest
from tests.integration.pipeline import DATA_DIR, Pipeline, assert_official_result
from tests.unit.test_pa_xml import BILLION_LAUGHS

HOSTILE = "General_Election_2024_result_1_9.xml"


def test_the_night_dropped_as_pa_files_ends_at_the_official_result_past_a_hostile_file(
    pipeline: Pipeline, night: Night, tmp_path: Path
) -> None:
    feed = clean_feed(night)
    exit_poll = [item for item in feed if item.label == EXIT_POLL]
    files = pa_feed(feed, load_feed_mapping(DATA_DIR, "rehearsal", night.register), night.register)
    half = len(files) // 2
    drop = tmp_path / "drop"
    drop.mkdir()
    with pipeline.worker() as worker, pa_ingest(pipeline, drop) as log:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(exit_poll)  # PA has no exit poll message: it comes the JSON way
        with folder_sender(drop) as drop_file:
            replay(files[:half], drop_file, None)
            pipeline.wait_for_seats(100)
            drop_file(HOSTILE, BILLION_LAUGHS)
            replay(files[half:], drop_file, None)
        pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    counters = pipeline.counters()
    # Every PA result once: nothing refused by the worker, nothing taken twice.
    assert counters["validation:accepted"] == 651
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651
    declarations = [orjson.loads(value) for _, value, _ in pipeline.read("declarations")]
    assert (
        sorted(d["source"] for d in declarations if "constituency_id" in d)
        == ["pa:rehearsal"] * 650
    )
    [(key, value, headers)] = pipeline.read("dead_letter")
    letter = FeedRefusal.model_validate_json(value)
    assert key == HOSTILE.encode() and headers == {"reason": b"xml_dtd_forbidden"}
    assert (letter.file_name, letter.reason, letter.source) == (
        HOSTILE,
        "xml_dtd_forbidden",
        "pa:rehearsal",
    )
    assert "lolz" in letter.detail and base64.b64decode(letter.original_b64) == BILLION_LAUGHS
    assert "refused" in log.read_text()


def test_an_ingest_killed_twice_mid_night_loses_nothing_and_applies_nothing_twice(
    pipeline: Pipeline, night: Night, tmp_path: Path
) -> None:
    feed = clean_feed(night)
    files = pa_feed(feed, load_feed_mapping(DATA_DIR, "rehearsal", night.register), night.register)
    thirds = [files[: len(files) // 3], files[len(files) // 3 : 2 * len(files) // 3]]
    thirds.append(files[2 * len(files) // 3 :])
    drop = tmp_path / "drop"
    with pipeline.worker() as worker, folder_sender(drop) as drop_file:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([item for item in feed if item.label == EXIT_POLL])
        for third, seats in zip(thirds, (100, 300), strict=False):
            with pa_ingest(pipeline, drop):  # killed with SIGKILL as the block ends
                replay(third, drop_file, None)
                pipeline.wait_for_seats(seats)
        with pa_ingest(pipeline, drop):
            replay(thirds[-1], drop_file, None)
            pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    counters = pipeline.counters()
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651
    # A kill between publishing and recording re-publishes that poll: counted, not applied.
    assert counters["validation:accepted"] == 651 + counters["tally:duplicate"]
    assert not pipeline.read("dead_letter")
