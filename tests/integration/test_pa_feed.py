"""The 2024 night as PA files, dropped or over FTP, through the ingest, a worker, Kafka, Redis."""

from __future__ import annotations

import base64
import time
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest

from schemas.feed_refusal import FeedRefusal
from scripts.chaos import EXIT_POLL, clean_feed
from scripts.night_builder import Night
from scripts.pa_ftp_server import read_only_ftp
from scripts.pa_pack import folder_sender, pa_feed
from scripts.replay import replay
from streams.feeds.pa.mapping import load_feed_mapping
from tests.integration.pa_ingest import pa_ingest
from tests.integration.pipeline import (
    DATA_DIR,
    Pipeline,
    assert_alerts_of_the_clean_night,
    assert_official_result,
    assert_published_once,
    clean_night_alert_ids,
)
from tests.unit.test_pa_xml import BILLION_LAUGHS, EXTERNAL_ENTITY

HOSTILE = "General_Election_2024_result_1_9.xml"
# PA's last state of the parties sent again once the night is over, under a name of its own.
RESENT = "General_Election_2024_resent_SOP_650.xml"


def hostile_files(first: bytes) -> list[tuple[str, bytes]]:
    """Mid-night, beside the good files: each kind of file the ingest must refuse, by name.
    `first` is the night's first result (Houghton and Sunderland South, PA seat 295)."""
    return [
        (HOSTILE, BILLION_LAUGHS),
        ("General_Election_2024_result_296_9.xml", EXTERNAL_ENTITY),
        ("General_Election_2024_result_297_9.xml", first[: len(first) // 2]),  # cut short
        (
            "General_Election_2024_result_9999_1.xml",
            first.replace(b'number="295"', b'number="9999"'),
        ),
        # The first result again under another name: PA re-sending a revision already taken.
        ("Resent_result_295_1.xml", first),
    ]


HOSTILE_REASONS = {
    HOSTILE: "xml_dtd_forbidden",
    "General_Election_2024_result_296_9.xml": "xml_dtd_forbidden",
    "General_Election_2024_result_297_9.xml": "xml_malformed",
    "General_Election_2024_result_9999_1.xml": "pa_unknown_seat",
    "Resent_result_295_1.xml": "pa_revision_already_ingested",
}


def wait_for_text(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {log} after {timeout}s"
        time.sleep(0.1)


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
            for name, body in hostile_files(files[0].value):
                drop_file(name, body)
            replay(files[half:], drop_file, None)
            pipeline.wait_until_published(night.register)
            # Every state of the parties the ingest compared agreed with our tallies, and
            # this one, with every seat applied, is compared at once.
            drop_file(RESENT, files[-1].value)
            wait_for_text(
                log,
                "took 1 files: 0 declarations published, 1 states of the parties "
                "(against ours: agreed 1)",
            )
    assert_official_result(pipeline, night)
    # The same alerts as the night sent as JSON, each once.
    assert_alerts_of_the_clean_night(assert_published_once(pipeline), clean_night_alert_ids())
    assert "disagrees" not in log.read_text()
    notes = [orjson.loads(value) for _, value, _ in pipeline.read("newsroom")]
    assert [n for n in notes if n.get("message_type") == "feed_check"] == []
    counters = pipeline.counters()
    # Every PA result once: nothing refused by the worker, nothing taken twice.
    assert counters["validation:accepted"] == 651
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651
    declarations = [orjson.loads(value) for _, value, _ in pipeline.read("declarations")]
    assert (
        sorted(d["source"] for d in declarations if "constituency_id" in d)
        == ["pa:rehearsal"] * 650
    )
    # Every hostile or broken file refused for its reason, the night going on past them.
    letters = {
        key: (FeedRefusal.model_validate_json(value), headers)
        for key, value, headers in pipeline.read("dead_letter")
    }
    reasons = {key.decode(): refused.reason for key, (refused, _) in letters.items()}
    assert reasons == HOSTILE_REASONS
    for key, (letter, headers) in letters.items():
        assert headers == {"reason": letter.reason.encode()}
        assert (letter.file_name, letter.source) == (key.decode(), "pa:rehearsal")
    letter, _ = letters[HOSTILE.encode()]
    assert "lolz" in letter.detail and base64.b64decode(letter.original_b64) == BILLION_LAUGHS
    assert "refused" in log.read_text()


@pytest.mark.parametrize("over", ["drop folder", "ftp"])
def test_an_ingest_killed_twice_mid_night_loses_nothing_and_applies_nothing_twice(
    pipeline: Pipeline, night: Night, tmp_path: Path, over: str
) -> None:
    feed = clean_feed(night)
    files = pa_feed(feed, load_feed_mapping(DATA_DIR, "rehearsal", night.register), night.register)
    thirds = [files[: len(files) // 3], files[len(files) // 3 : 2 * len(files) // 3]]
    thirds.append(files[2 * len(files) // 3 :])
    drop = tmp_path / "drop"
    with ExitStack() as running:
        worker = running.enter_context(pipeline.worker())
        # Over FTP as PA serves it: `.timestamp` rewritten after each file, the folder read-only.
        drop_file = running.enter_context(folder_sender(drop, stamped=over == "ftp"))
        source = running.enter_context(read_only_ftp(drop, 0)) if over == "ftp" else drop
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([item for item in feed if item.label == EXIT_POLL])
        for third, seats in zip(thirds, (100, 300), strict=False):
            with pa_ingest(pipeline, source):  # killed with SIGKILL as the block ends
                replay(third, drop_file, None)
                pipeline.wait_for_seats(seats)
        with pa_ingest(pipeline, source):
            replay(thirds[-1], drop_file, None)
            pipeline.wait_until_published(night.register)
    assert_official_result(pipeline, night)
    assert_alerts_of_the_clean_night(assert_published_once(pipeline), clean_night_alert_ids())
    counters = pipeline.counters()
    assert counters["tally:applied"] + counters["tally:exit_poll_applied"] == 651
    # A kill between publishing and recording re-publishes that poll: counted, not applied.
    assert counters["validation:accepted"] == 651 + counters["tally:duplicate"]
    assert not pipeline.read("dead_letter")
