"""The PA rehearsal pack: the 2024 night written as PA files reads back as the night."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.declaration import Declaration
from scripts.chaos import ChaosRates, Outgoing, clean_feed, inject_chaos
from scripts.pa_pack import STATE_OF_PARTIES, folder_sender, pa_feed
from scripts.replay import main as replay_main
from streams.feeds.pa.file_names import check_file_name, parse_file_name
from streams.feeds.pa.messages import PaMessageType, PaStateOfParties
from streams.feeds.pa.refusals import Refusal
from streams.feeds.pa.xml_reader import read_message
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES
from tests.unit.pa_fixtures import mapping, register, through_pa
from tests.unit.tally_fixtures import night


def _pack() -> list[Outgoing]:
    return pa_feed(clean_feed(night()), mapping(), register())


def test_the_files_of_a_clean_night_parse_back_to_the_nights_declarations() -> None:
    files = _pack()
    seats = [f for f in files if f.label != STATE_OF_PARTIES]
    back = []
    for item in seats:
        name = parse_file_name(item.key)
        message = read_message(item.value)
        assert not isinstance(name, Refusal) and not isinstance(message, Refusal), item.key
        assert check_file_name(name, message) is None
        declaration = through_pa(item.value)
        assert isinstance(declaration, Declaration), declaration
        back.append(declaration)
    sent = [d.model_copy(update={"source": mapping().source}) for d in night().declarations]
    assert back == sent


def test_a_state_of_the_parties_follows_each_result_and_the_last_is_the_official_one() -> None:
    files = _pack()
    assert [f.label == STATE_OF_PARTIES for f in files] == [False, True] * 650
    assert [f.key for f in files[1::2]] == [
        f"General_Election_2024_SOP_{n}.xml" for n in range(1, 651)
    ]
    last = read_message(files[-1].value)
    assert isinstance(last, PaStateOfParties)
    assert last.number_of_results == 650 and last.total_votes == OFFICIAL_VALID_VOTES
    seats = {}
    for party in last.parties:
        ours = mapping().party(party.pa_id)
        assert not isinstance(ours, Refusal)
        if party.total_seats:
            seats[ours.abbreviation] = party.total_seats
    assert seats == OFFICIAL_SEATS


def test_a_messy_night_writes_each_revision_once_and_states_only_when_the_picture_moves() -> None:
    rates = ChaosRates(malformed=0.0, invalid=0.0)
    feed = inject_chaos(night(), 7, rates)
    files = pa_feed(feed, mapping(), register())
    names = [f.key for f in files]
    assert len(names) == len(set(names))
    seat_files = [f for f in files if f.label != STATE_OF_PARTIES]
    # Duplicates are the same file again; everything else of the feed is written.
    assert len(seat_files) == len({item.value for item in feed if item.kind != "exit_poll"})
    types = {getattr(parse_file_name(f.key), "message_type", None) for f in seat_files}
    assert types == {PaMessageType.RUSH, PaMessageType.RESULT, PaMessageType.RECOUNT}


def test_a_file_is_written_whole_under_its_name_and_no_temporary_is_left(tmp_path: Path) -> None:
    with folder_sender(tmp_path / "drop") as send:
        send("General_Election_2024_SOP_1.xml", b"<x/>")
        send("General_Election_2024_SOP_1.xml", b"<y/>")
    assert [p.name for p in (tmp_path / "drop").iterdir()] == ["General_Election_2024_SOP_1.xml"]
    assert (tmp_path / "drop" / "General_Election_2024_SOP_1.xml").read_bytes() == b"<y/>"


def test_election_replay_format_pa_writes_the_night_into_a_folder(tmp_path: Path) -> None:
    assert replay_main(["--format", "pa", "--out", str(tmp_path), "--speed", "max"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 1300 and not [n for n in names if n.startswith(".")]
    assert all(not isinstance(parse_file_name(name), Refusal) for name in names)


def test_election_replay_format_pa_needs_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        replay_main(["--format", "pa"])
    assert "--out DIR" in capsys.readouterr().err
