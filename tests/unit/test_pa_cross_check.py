"""PA's state of the parties against our tallies: the comparison, the check's wait, and the
ingest checking the latest of a poll's states and telling the newsroom of a disagreement."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas.feed_check import FigureDifference, PartyDifference
from schemas.results import StateOfParties
from scripts.chaos import clean_feed
from scripts.pa_pack import STATE_OF_PARTIES, folder_sender, pa_feed
from streams.feeds.pa.cross_check import (
    Agreed,
    Disagreed,
    NotCompared,
    compare,
    party_differences,
    told,
    unapplied,
)
from streams.feeds.pa.messages import PaPartyTotal, PaStateOfParties
from streams.feeds.pa.xml_reader import read_message
from streams.feeds.pa.xml_writer import state_of_parties_xml
from streams.ingest.kafka_output import OutputNotAcknowledged
from streams.ingest.pa_folder import out_of_place
from streams.ingest.totals_check import TotalsCheck
from streams.store.tally_reader import BlockingTallyReader
from streams.store.tally_store import PendingApply, TallyStore
from tests.unit.pa_fixtures import mapping, register
from tests.unit.tally_fixtures import night
from tests.unit.test_pa_ingest import FakeOutput, StubTallies, _ingest
from tests.unit.test_pa_output import state_after

SEATS = 100
ELECTION = "parl.2024-07-04"


def pa_state(ours: StateOfParties) -> PaStateOfParties:
    """PA's file of the same moment, as the rehearsal pack writes it, read back."""
    message = read_message(state_of_parties_xml(ours, mapping(), register()))
    assert isinstance(message, PaStateOfParties), message
    return message


def with_lines(pa: PaStateOfParties, *lines: PaPartyTotal) -> PaStateOfParties:
    return replace(pa, parties=lines)


def line_of(pa: PaStateOfParties, code: str) -> PaPartyTotal:
    [line] = [p for p in pa.parties if p.pa_id == mapping().totals_party_ids[code]]
    return line


def others(pa: PaStateOfParties, code: str) -> tuple[PaPartyTotal, ...]:
    return tuple(p for p in pa.parties if p.pa_id != mapping().totals_party_ids[code])


# ---- the comparison ----


def test_the_same_moment_agrees() -> None:
    ours = state_after(SEATS)
    assert compare(pa_state(ours), ours, mapping()) == Agreed()
    assert compare(pa_state(state_after(650)), state_after(650), mapping()) == Agreed()


def test_seats_that_differ_are_a_disagreement_naming_the_party_and_both_figures() -> None:
    ours = state_after(SEATS)
    pa = pa_state(ours)
    lab = line_of(pa, "Lab")
    pa = with_lines(pa, replace(lab, total_seats=lab.total_seats + 1), *others(pa, "Lab"))
    verdict = compare(pa, ours, mapping())
    tally = next(t for t in ours.parties if t.party == "Lab")
    assert verdict == Disagreed(
        (
            PartyDifference(
                party="Lab",
                feed_party_id=lab.pa_id,
                name=tally.name,
                figures=[FigureDifference(figure="seats", feed=tally.seats + 1, ours=tally.seats)],
            ),
        )
    )
    assert told(verdict.differences) == f"Lab seats {tally.seats + 1} (ours {tally.seats})"


def test_a_party_pa_counts_that_we_lack_and_one_of_ours_pa_leaves_out() -> None:
    ours = state_after(SEATS)
    pa = pa_state(ours)
    ours_codes = {t.party for t in ours.parties}
    absent = next(
        party for party in mapping().party_ids if party.abbreviation not in ours_codes
    ).abbreviation
    pa_id = mapping().totals_party_ids[absent]
    extra = PaPartyTotal(pa_id=pa_id, name="Someone", abbreviation=absent, total_votes=12)
    smallest = ours.parties[-1]
    pa = with_lines(pa, extra, *others(pa, smallest.party))
    differences = party_differences(pa, ours, mapping())
    assert {d.party: (d.feed_party_id, d.figures) for d in differences} == {
        absent: (pa_id, [FigureDifference(figure="votes", feed=12, ours=0)]),
        smallest.party: (
            None,
            [
                FigureDifference(figure=figure, feed=0, ours=getattr(smallest, figure))
                for figure in ("seats", "gains", "losses", "votes")
                if getattr(smallest, figure)
            ],
        ),
    }
    # A party PA lists with nothing at all is no difference.
    quiet = PaPartyTotal(pa_id=pa_id, name="Someone", abbreviation=absent)
    assert compare(with_lines(pa_state(ours), quiet, *pa_state(ours).parties), ours, mapping()) == (
        Agreed()
    )


def test_a_party_id_the_mapping_does_not_know_is_a_difference_even_at_zero() -> None:
    ours = state_after(SEATS)
    pa = pa_state(ours)
    unknown = max(mapping().parties) + 1
    strangers = (
        PaPartyTotal(pa_id=unknown, name="Stranger", abbreviation="X", total_votes=5),
        PaPartyTotal(pa_id=unknown + 1, name="Quiet stranger", abbreviation="Y"),
    )
    verdict = compare(with_lines(pa, *pa.parties, *strangers), ours, mapping())
    assert verdict == Disagreed(
        (
            PartyDifference(
                party=None,
                feed_party_id=unknown,
                name="Stranger",
                figures=[FigureDifference(figure="votes", feed=5, ours=0)],
            ),
            PartyDifference(
                party=None, feed_party_id=unknown + 1, name="Quiet stranger", figures=[]
            ),
        )
    )
    assert told(verdict.differences) == (
        f"PA party {unknown} is not in the mapping: votes 5 (ours 0); "
        f"PA party {unknown + 1} is not in the mapping"
    )


def test_a_party_pa_lists_under_two_of_its_ids_is_added_up() -> None:
    """Labour and Labour and Co-operative have ids of their own, one code of ours."""
    ours = state_after(650)
    pa = pa_state(ours)
    lab = line_of(pa, "Lab")
    co_op_id = next(
        pa_id
        for pa_id, party in mapping().parties.items()
        if party.abbreviation == "Lab" and pa_id != lab.pa_id
    )
    co_op = replace(lab, pa_id=co_op_id, total_seats=40, gains=10, losses=0, total_votes=1000)
    split = replace(
        lab,
        total_seats=lab.total_seats - 40,
        gains=lab.gains - 10,
        total_votes=lab.total_votes - 1000,
    )
    assert compare(with_lines(pa, split, co_op, *others(pa, "Lab")), ours, mapping()) == Agreed()


def test_another_moment_or_messages_still_to_apply_are_not_compared() -> None:
    ours = state_after(SEATS)
    pa = pa_state(state_after(SEATS + 1))
    assert compare(pa, ours, mapping()) == NotCompared(SEATS, SEATS + 1, 0)
    assert compare(pa_state(ours), ours, mapping(), still_to_apply=3) == NotCompared(
        SEATS, SEATS, 3
    )
    assert unapplied({0: 10, 1: 4}, {0: 10, 1: 6, 2: 0}) == 3
    assert unapplied({0: 11}, {0: 10}) == 0


# ---- the check: waiting for our tallies, telling the newsroom ----


def _check(tallies: StubTallies, output: FakeOutput, wait_s: float = 0.0) -> TotalsCheck:
    return TotalsCheck(tallies, output, mapping(), "declarations", wait_s=wait_s)


def test_the_check_waits_for_every_declaration_sent_then_agrees_quietly() -> None:
    output = FakeOutput(published=[(b"k", b"v")] * 5)  # offsets 0-4 acknowledged
    behind, there = state_after(SEATS - 2), state_after(SEATS)
    tallies = StubTallies([({0: 2}, behind), ({0: 4}, there)])
    verdict = _check(tallies, output, wait_s=5.0).check("SOP_100.xml", 100, pa_state(there))
    assert verdict == Agreed() and tallies.reads == 2 and output.notes == []


def test_a_worker_not_there_in_time_is_not_compared_and_holds_nothing_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    output = FakeOutput(published=[(b"k", b"v")] * 5)
    tallies = StubTallies([({0: 2}, state_after(SEATS - 2))])
    with caplog.at_level(logging.INFO, logger="streams.ingest.totals_check"):
        verdict = _check(tallies, output, wait_s=0.2).check(
            "SOP_100.xml", 100, pa_state(state_after(SEATS))
        )
    assert verdict == NotCompared(SEATS - 2, SEATS, 2)
    assert 2 <= tallies.reads <= 10  # read a few times a second, then given up
    assert "SOP_100.xml not compared: we had 98 of 100 seats" in caplog.text


def test_a_disagreement_is_logged_and_told_to_the_newsroom(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = state_after(SEATS)
    pa = pa_state(ours)
    con = line_of(pa, "Con")
    pa = with_lines(pa, replace(con, total_votes=con.total_votes + 7), *others(pa, "Con"))
    output = FakeOutput()
    with caplog.at_level(logging.WARNING, logger="streams.ingest.totals_check"):
        verdict = _check(StubTallies([({}, ours)]), output).check("SOP_100.xml", 100, pa)
    assert isinstance(verdict, Disagreed)
    assert "SOP_100.xml disagrees with our tallies at 100 seats: Con votes" in caplog.text
    [(key, note)] = output.notes
    assert key == b"SOP_100.xml"
    assert (note.file_name, note.source, note.feed_revision, note.rehearsal) == (
        "SOP_100.xml",
        "pa:rehearsal",
        100,
        True,
    )
    assert (note.seats_declared, note.our_sequence, note.election_id) == (
        SEATS,
        ours.sequence,
        ours.election_id,
    )
    assert note.differences == list(verdict.differences)


def test_a_newsroom_kafka_refuses_or_a_redis_that_fails_never_fails_the_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = state_after(SEATS)
    pa = pa_state(state_after(SEATS))
    pa = with_lines(pa, *pa.parties[1:])

    class Refusing(FakeOutput):
        def tell_newsroom(self, key: bytes, value: bytes) -> None:
            raise OutputNotAcknowledged("broker gone")

    with caplog.at_level(logging.ERROR, logger="streams.ingest.totals_check"):
        verdict = _check(StubTallies([({}, ours)]), Refusing()).check("SOP.xml", 1, pa)
    assert isinstance(verdict, Disagreed)
    assert "the newsroom was not told" in caplog.text

    class Unreachable(StubTallies):
        def applied_and_state(self, topic: str) -> tuple[dict[int, int], StateOfParties]:
            raise RedisConnectionError("Redis gone")

    verdict = _check(Unreachable([]), FakeOutput()).check("SOP.xml", 1, pa)
    assert verdict == NotCompared(None, SEATS, 0)


# ---- in the ingest ----


# File times a millisecond apart: the file system's own clock is too coarse to order files
# written back to back, and the ingest then rightly compares nothing.
WRITTEN_FROM_NS = 1_720_000_000 * 1_000_000_000
WRITTEN_EVERY_NS = 1_000_000


def _first_files(seats: int) -> list[tuple[str, bytes]]:
    """The rehearsal pack's first files: each seat, then PA's totals after it."""
    feed = clean_feed(night())[: 1 + seats]  # the exit poll (no PA file), then the seats
    files = pa_feed(feed, mapping(), register())
    assert [f.label == STATE_OF_PARTIES for f in files] == [False, True] * seats
    return [(item.key, item.value) for item in files]


def _drop(folder: Path, files: list[tuple[str, bytes]], order: list[int] | None = None) -> None:
    """`files` into the folder (those at `order` only, if given), each stamped with its place
    in the night's writing order."""
    with folder_sender(folder) as send:
        for place in range(len(files)) if order is None else order:
            name, body = files[place]
            send(name, body)
            at = WRITTEN_FROM_NS + place * WRITTEN_EVERY_NS
            os.utime(folder / name, ns=(at, at))


def _drop_first(folder: Path, seats: int) -> None:
    _drop(folder, _first_files(seats))


def test_the_ingest_checks_only_the_latest_state_of_a_poll_once_its_seats_are_applied(
    tmp_path: Path,
) -> None:
    _drop_first(tmp_path, 3)
    output = FakeOutput()
    # The worker has applied the three declarations (offsets 0-2) when the check reads.
    tallies = StubTallies([({0: 2}, state_after(3))])
    ingest = _ingest(tmp_path, fakeredis.FakeRedis(), output, tallies)
    assert ingest.poll().files == 0
    report = ingest.poll()
    assert (report.published, report.states_of_parties) == (3, 3)
    # SOP_1 and SOP_2 tell of moments before the poll's last seat; SOP_3 agrees.
    assert report.checked == {"agreed": 1} and tallies.reads == 1
    assert output.notes == []


def test_the_ingest_tells_the_newsroom_when_pa_and_we_disagree(tmp_path: Path) -> None:
    _drop_first(tmp_path, 3)
    output = FakeOutput()
    other_three = state_after(4).model_copy(update={"seats_declared": 3})
    ingest = _ingest(tmp_path, fakeredis.FakeRedis(), output, StubTallies([({0: 2}, other_three)]))
    ingest.poll()
    report = ingest.poll()
    assert report.checked == {"disagreed": 1}
    [(key, note)] = output.notes
    assert key == b"General_Election_2024_SOP_3.xml" and note.feed_revision == 3
    assert note.differences


def test_a_poll_that_took_a_seat_written_after_its_state_and_missed_one_before_compares_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listing made while PA renames files in can miss seat 3 and see its state of the
    parties and seat 4 after it: the seat counts then agree and the parties need not."""
    files = _first_files(4)  # seat 1, SOP_1, ..., seat 4, SOP_4: places 0 to 7
    seat_3, sop_3, seat_4, sop_4 = 4, 5, 6, 7
    _drop(tmp_path, files, [0, 1, 2, 3, sop_3, seat_4])
    output = FakeOutput()
    # Seats 1, 2 and 4 applied: three seats, as SOP_3 says, but not its three.
    tallies = StubTallies([({0: 2}, state_after(4).model_copy(update={"seats_declared": 3}))])
    ingest = _ingest(tmp_path, fakeredis.FakeRedis(), output, tallies)
    assert ingest.poll().files == 0  # the first look
    _drop(tmp_path, files, [seat_3])  # written before SOP_3, seen only now
    caplog.set_level(logging.INFO, logger="streams.ingest.pa_folder")
    report = ingest.poll()
    assert (report.published, report.states_of_parties) == (3, 3)
    assert report.checked == {"not_compared": 1} and tallies.reads == 0
    assert files[seat_4][0] + " was taken with it" in caplog.text
    assert output.notes == []
    # Seat 3 is taken at the next poll; SOP_4, written after everything, is compared.
    assert ingest.poll().published == 1
    _drop(tmp_path, files, [sop_4])
    tallies.answers = [({0: 3}, state_after(4))]
    ingest.poll()
    report = ingest.poll()
    assert report.checked == {"agreed": 1} and output.notes == []


def test_a_state_is_compared_only_after_each_seat_taken_and_before_each_waiting() -> None:
    at = {"sop": 10, "early": 5, "late": 15, "tied": 10, "unknown": None}
    assert out_of_place("sop", at, ["early"], -1, ["late"]) is None
    assert out_of_place("sop", at, [], 9, []) is None
    assert out_of_place("sop", at, [], 10, []) is not None  # an earlier poll's seat, as late
    assert out_of_place("sop", at, ["late"], -1, []) is not None
    assert out_of_place("sop", at, ["tied"], -1, []) is not None
    assert out_of_place("sop", at, ["unknown"], -1, []) is not None
    assert out_of_place("sop", at, [], -1, ["early"]) is not None
    assert out_of_place("sop", at, [], -1, ["tied"]) is not None
    assert out_of_place("sop", at, [], -1, ["unknown"]) is not None
    # A folder that gives no times: only a state taken alone, nothing waiting, is compared.
    at["sop"] = None
    assert out_of_place("sop", at, [], 20, []) is None
    assert out_of_place("sop", at, ["early"], -1, []) is not None
    assert out_of_place("sop", at, [], -1, ["late"]) is not None


# ---- our tallies read without an event loop ----


def test_the_blocking_reader_gives_the_offsets_applied_and_the_state_they_made() -> None:
    server = fakeredis.FakeServer()
    store = TallyStore(fakeredis.FakeAsyncRedis(server=server), ELECTION, "test:", register())
    declared = night().declarations[:3]
    steps = [PendingApply(d, "declarations", 1, 40 + i) for i, d in enumerate(declared)]
    asyncio.run(store.apply_steps(steps))
    reader = BlockingTallyReader(
        lambda: fakeredis.FakeAsyncRedis(server=server), "test:", register()
    )
    applied, state = reader.applied_and_state("declarations")
    assert applied == {1: 42}
    assert state == state_after(3)
    assert reader.applied_and_state("elsewhere")[0] == {}
