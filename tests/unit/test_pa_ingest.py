"""The PA drop-folder ingest: each file taken once, in order; hostile ones refused; restarts safe"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

import fakeredis
import orjson
import pytest

from schemas.declaration import Declaration, DeclarationKind
from schemas.feed_check import FeedCheck
from schemas.feed_refusal import FeedRefusal
from schemas.results import StateOfParties
from scripts.chaos import clean_feed
from scripts.pa_pack import folder_sender, pa_feed
from streams.feeds.pa.revisions import SeatTaken
from streams.ingest.drop_folder import DropFolder
from streams.ingest.kafka_output import OutputNotAcknowledged
from streams.ingest.pa_folder import PaFolderIngest
from streams.ingest.progress import IngestProgress
from streams.ingest.totals_check import TotalsCheck
from streams.rules.tally import state_of_parties
from tests.unit.pa_fixtures import mapping, norfolk, register, xml_of
from tests.unit.tally_fixtures import night, rush
from tests.unit.test_pa_xml import BILLION_LAUGHS


@dataclass
class FakeOutput:
    """Kafka as the ingest sees it: sends pending until confirmed, or refused when told."""

    published: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: list[tuple[bytes, FeedRefusal, str]] = field(default_factory=list)
    pending: list[tuple[str, tuple[bytes, bytes, str]]] = field(default_factory=list)
    fail_next_confirm: bool = False
    notes: list[tuple[bytes, FeedCheck]] = field(default_factory=list)

    def publish(self, key: bytes, value: bytes) -> None:
        self.pending.append(("published", (key, value, "")))

    def dead_letter(self, key: bytes, value: bytes, reason: str) -> None:
        self.pending.append(("dead", (key, value, reason)))

    def confirm(self) -> None:
        pending, self.pending = self.pending, []
        if self.fail_next_confirm:
            self.fail_next_confirm = False
            raise OutputNotAcknowledged("broker gone")
        for where, (key, value, reason) in pending:
            if where == "published":
                self.published.append((key, value))
            else:
                self.dead.append((key, FeedRefusal.model_validate_json(value), reason))

    def declarations(self) -> list[Declaration]:
        return [Declaration.model_validate_json(value) for _, value in self.published]

    def acknowledged(self) -> dict[int, int]:
        """One partition: the last declaration confirmed is at offset (count - 1)."""
        return {0: len(self.published) - 1} if self.published else {}

    def tell_newsroom(self, key: bytes, value: bytes) -> None:
        self.notes.append((key, FeedCheck.model_validate_json(value)))


@dataclass
class StubTallies:
    """Our tallies as the check reads them: each read the next answer, the last one repeated."""

    answers: list[tuple[dict[int, int], StateOfParties]]
    reads: int = 0

    def applied_and_state(self, topic: str) -> tuple[dict[int, int], StateOfParties]:
        self.reads += 1
        return self.answers[min(self.reads, len(self.answers)) - 1]


def nothing_tallied() -> StubTallies:
    return StubTallies([({}, state_of_parties({}, register(), 0, None, None))])


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _ingest(
    folder: Path,
    client: fakeredis.FakeRedis,
    output: FakeOutput,
    tallies: StubTallies | None = None,
) -> PaFolderIngest:
    progress = IngestProgress(client, "test:", register().election_id, mapping().source)
    # No worker here unless the test gives one: PA's totals are then never compared.
    check = TotalsCheck(tallies or nothing_tallied(), output, mapping(), "declarations", wait_s=0.0)
    return PaFolderIngest(
        DropFolder(folder), progress, output, mapping(), register(), totals_check=check
    )


def _settle(ingest: PaFolderIngest) -> None:
    """A first look at new files: none is taken until it is seen unchanged a second time."""
    assert ingest.poll().files == 0


def _drop(folder: Path, name: str, body: bytes) -> None:
    with folder_sender(folder) as send:
        send(name, body)


def _number_of(declaration: Declaration) -> int:
    return mapping().seat_numbers[declaration.constituency_id]


def _norfolk_number() -> int:
    return mapping().seat_numbers[norfolk().constituency_id]


def test_a_clean_night_is_published_once_keyed_by_ons_id_and_a_restart_adds_nothing(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    with folder_sender(tmp_path) as send:
        for item in pa_feed(clean_feed(night()), mapping(), register()):
            send(item.key, item.value)
    output = FakeOutput()
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    report = ingest.poll()
    assert (report.published, report.states_of_parties, report.refused.total()) == (650, 650, 0)
    assert sorted(output.declarations(), key=lambda d: d.constituency_id) == sorted(
        (d.model_copy(update={"source": "pa:rehearsal"}) for d in night().declarations),
        key=lambda d: d.constituency_id,
    )
    assert all(
        key == d.constituency_id.encode()
        for (key, _), d in zip(output.published, output.declarations(), strict=True)
    )
    # In the night's own order, not PA's seat numbers: the workers' watermark relies on it.
    times = [d.declared_at for d in output.declarations()]
    assert times == sorted(times) and times != [
        d.declared_at for d in sorted(output.declarations(), key=lambda d: _number_of(d))
    ]
    assert ingest.poll().files == 0
    restarted = _ingest(tmp_path, client, output)
    _settle(restarted)
    assert restarted.poll().files == 0 and len(output.published) == 650


def test_a_seat_is_taken_by_revision_a_later_result_corrects_and_an_older_one_is_refused(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    seat = _norfolk_number()
    result = norfolk().model_copy(update={"revision": 2})
    _drop(tmp_path, f"GE_result_{seat}_2.xml", xml_of(result))
    _drop(tmp_path, f"GE_rush_{seat}_1.xml", xml_of(rush(norfolk())))
    output = FakeOutput()
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    assert ingest.poll().published == 2
    assert [(d.kind, d.revision) for d in output.declarations()] == [
        (DeclarationKind.RUSH, 1),
        (DeclarationKind.RESULT, 2),
    ]
    # After a restart: what the seat has taken comes from Redis.
    restarted = _ingest(tmp_path, client, output)
    _drop(tmp_path, f"GE_result_{seat}_3.xml", xml_of(result.model_copy(update={"revision": 3})))
    _drop(tmp_path, f"GE_rush_{seat}_1b.xml", b"")  # not a PA name
    _settle(restarted)
    report = restarted.poll()
    assert report.published == 1 and output.declarations()[-1].kind is DeclarationKind.CORRECTION
    assert report.refused == {"pa_bad_file_name": 1}
    # The same revisions again under other names: PA re-sends, and old files arrive late.
    _drop(tmp_path, f"PA_rush_{seat}_1.xml", xml_of(rush(norfolk())))
    _drop(tmp_path, f"PA_result_{seat}_3.xml", xml_of(result.model_copy(update={"revision": 3})))
    _settle(restarted)
    assert restarted.poll().refused == {"pa_stale_revision": 1, "pa_revision_already_ingested": 1}
    assert len(output.published) == 3


def test_a_hostile_file_goes_to_the_dead_letters_with_its_reason_and_the_rest_go_on(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    seat = _norfolk_number()
    _drop(tmp_path, "GE_result_7_1.xml", BILLION_LAUGHS)
    _drop(tmp_path, f"GE_result_{seat}_1.xml", xml_of(norfolk()))
    output = FakeOutput()
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    report = ingest.poll()
    assert report.published == 1 and report.refused == {"xml_dtd_forbidden": 1}
    [(key, letter, reason)] = output.dead
    assert key == b"GE_result_7_1.xml" and reason == "xml_dtd_forbidden"
    assert letter.file_name == "GE_result_7_1.xml" and letter.source == "pa:rehearsal"
    assert letter.reason == "xml_dtd_forbidden" and "lolz" in letter.detail
    assert base64.b64decode(letter.original_b64) == BILLION_LAUGHS
    assert letter.size == len(BILLION_LAUGHS)


def test_a_file_still_being_written_waits_and_a_hidden_one_is_never_read(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    body = xml_of(norfolk())
    name = tmp_path / f"GE_result_{_norfolk_number()}_1.xml"
    name.write_bytes(body[:100])
    (tmp_path / ".GE_result_1_1.xml.part").write_bytes(b"<half")
    output = FakeOutput()
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    with name.open("ab") as handle:
        handle.write(body[100:])
    assert ingest.poll().files == 0  # it grew since the last look
    assert ingest.poll().published == 1
    assert ingest.poll().files == 0 and not output.dead


def test_a_file_name_that_is_not_utf8_is_refused_once(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    (Path(os.fsdecode(bytes(tmp_path) + b"/GE_\xff.xml"))).write_bytes(b"<x/>")
    output = FakeOutput()
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    assert ingest.poll().refused == {"pa_bad_file_name": 1}
    assert output.dead[0][0] == b"GE_\xff.xml"
    restarted = _ingest(tmp_path, client, output)
    _settle(restarted)
    assert restarted.poll().files == 0 and len(output.dead) == 1


def test_a_poll_kafka_did_not_acknowledge_is_not_recorded_and_is_taken_again(
    tmp_path: Path, client: fakeredis.FakeRedis
) -> None:
    _drop(tmp_path, f"GE_result_{_norfolk_number()}_1.xml", xml_of(norfolk()))
    output = FakeOutput(fail_next_confirm=True)
    ingest = _ingest(tmp_path, client, output)
    _settle(ingest)
    with pytest.raises(OutputNotAcknowledged):
        ingest.poll()
    progress = IngestProgress(client, "test:", register().election_id, mapping().source)
    assert progress.handled_files() == set() and progress.seats_taken() == {}
    assert ingest.poll().published == 1
    assert [d.kind for d in output.declarations()] == [DeclarationKind.RESULT]
    assert progress.seats_taken() == {_norfolk_number(): SeatTaken(revision=1, has_result=True)}
    stored = client.hget(progress.seats_key, str(_norfolk_number()))
    assert orjson.loads(stored) == {"revision": 1, "has_result": True}
