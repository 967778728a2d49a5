"""PA's folder over FTP: `.timestamp` first, new files only, whole, capped; outages survived."""

from __future__ import annotations

import ftplib
import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from scripts.chaos import Outgoing, clean_feed
from scripts.ingest import parse_args
from scripts.pa_ftp_server import LOOPBACK, serving
from scripts.pa_pack import folder_sender, pa_feed
from streams.feeds.pa.intake import intake_order
from streams.ingest.drop_folder import FolderUnreachable
from streams.ingest.ftp_folder import (
    RECONNECT_MAX_S,
    TIMESTAMP,
    FtpFolder,
    FtpUrlError,
    modify_ns,
    parse_ftp_url,
)
from streams.ingest.pa_folder import PaFolderIngest
from streams.ingest.progress import IngestProgress
from streams.ingest.totals_check import TotalsCheck
from tests.unit.pa_fixtures import mapping, register
from tests.unit.tally_fixtures import night
from tests.unit.test_pa_ingest import FakeOutput, nothing_tallied

ROOT = Path(__file__).resolve().parents[2]
USER = "pa-desk-7f3"
PASSWORD = "s3cret-Pa55-q9"


@dataclass
class Clock:
    """The folder's monotonic clock, moved on by hand past a reconnect's wait."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    """A real pyftpdlib server on loopback over `folder`; `commands` the ones it was sent."""

    folder: Path
    port: int = 0
    mlsd: bool = True
    commands: list[str] = field(default_factory=list)
    # Downloads of feed files (not .timestamp) answered by hanging up, the next ones first.
    hang_ups: int = 0

    def url(self, user: str = USER, password: str = PASSWORD) -> str:
        return f"ftp://{user}:{password}@{LOOPBACK}:{self.port}/"

    def since(self, mark: int) -> list[str]:
        return self.commands[mark:]

    @contextmanager
    def running(self) -> Iterator[Server]:
        self.folder.mkdir(exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.folder), perm="elr")
        commands = self.commands
        outer = self
        cmds = {
            name: spec
            for name, spec in FTPHandler.proto_cmds.items()
            if self.mlsd or name not in ("MLSD", "MLST")
        }

        class Recording(FTPHandler):
            proto_cmds = cmds
            auth_failed_timeout = 0.1  # not pyftpdlib's 3 s against guessing

            def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
                commands.append(f"{cmd} {arg}".strip())
                if cmd == "RETR" and arg != TIMESTAMP and outer.hang_ups:
                    outer.hang_ups -= 1
                    return self.close()
                return super().pre_process_command(line, cmd, arg)

        Recording.authorizer = authorizer
        server = FTPServer((LOOPBACK, self.port), Recording)
        self.port = server.address[1]
        with serving(server):
            yield self


@cache
def _night_as_pa() -> list[Outgoing]:
    return pa_feed(clean_feed(night()), mapping(), register())


def _first_files(count: int) -> list[Outgoing]:
    """The night's first PA files: a result, then a state of the parties, and so on."""
    return _night_as_pa()[:count]


def _drop(folder: Path, name: str, body: bytes) -> None:
    with folder_sender(folder, stamped=True) as send:
        send(name, body)


def _folder(server: Server, clock: Clock | None = None) -> FtpFolder:
    return FtpFolder(parse_ftp_url(server.url()), timeout_s=5.0, clock=clock or Clock())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "pa").running() as running:
        yield running


def _retrieved(commands: list[str]) -> list[str]:
    return [c.removeprefix("RETR ") for c in commands if c.startswith("RETR ")]


def _listings(commands: list[str]) -> list[str]:
    return [c for c in commands if c.split()[0] in ("MLSD", "NLST", "LIST")]


def test_the_timestamp_comes_first_and_an_unchanged_one_lists_nothing(server: Server) -> None:
    _drop(server.folder, "General_Election_2024_SOP_1.xml", b"<x/>")
    folder = _folder(server)
    mark = len(server.commands)
    assert folder.settled(set()) == []  # first look
    first = [c for c in server.since(mark) if c.startswith(("RETR", "MLSD"))]
    assert first == [f"RETR {TIMESTAMP}", "MLSD"]
    assert folder.settled(set()) == ["General_Election_2024_SOP_1.xml"]  # unchanged since
    handled = {"General_Election_2024_SOP_1.xml"}
    mark = len(server.commands)
    for _ in range(3):
        assert folder.settled(handled) == []
    assert _retrieved(server.since(mark)) == [TIMESTAMP] * 3
    assert not _listings(server.since(mark))
    # A new file rewrites .timestamp: listed again, and only the new file is fetched.
    _drop(server.folder, "General_Election_2024_SOP_2.xml", b"<y/>")
    mark = len(server.commands)
    assert folder.settled(handled) == []
    assert folder.settled(handled) == ["General_Election_2024_SOP_2.xml"]
    assert folder.read("General_Election_2024_SOP_2.xml", 100) == (b"<y/>", 4)
    assert _retrieved(server.since(mark)) == [
        TIMESTAMP,
        TIMESTAMP,
        "General_Election_2024_SOP_2.xml",
    ]
    folder.close()


def test_a_file_growing_between_looks_waits_until_it_settles(server: Server) -> None:
    folder = _folder(server)
    assert folder.settled(set()) == []
    path = server.folder / "General_Election_2024_result_1_1.xml"
    path.write_bytes(b"<half")  # written in place, no new .timestamp
    assert folder.settled(set()) == []
    with path.open("ab") as more:
        more.write(b" a file/>")
    assert folder.settled(set()) == []  # still growing at the second look
    assert folder.settled(set()) == [path.name]
    assert folder.read(path.name, 100) == (b"<half a file/>", 14)
    folder.close()


def test_hidden_and_temporary_names_are_never_taken(server: Server) -> None:
    for name in (".General_Election_2024_SOP_1.xml.part", "General_Election_2024_SOP_2.xml.part"):
        _drop(server.folder, name, b"<x/>")
    _drop(server.folder, "upload.filepart", b"<x/>")
    (server.folder / "a folder").mkdir()
    folder = _folder(server)
    for _ in range(3):
        assert folder.settled(set()) == []
    os.replace(server.folder / "upload.filepart", server.folder / "General_Election_2024_SOP_3.xml")
    assert folder.settled(set()) == []
    assert folder.settled(set()) == ["General_Election_2024_SOP_3.xml"]
    folder.close()


def test_a_file_too_large_comes_back_capped_and_the_connection_goes_on(server: Server) -> None:
    _drop(server.folder, "General_Election_2024_result_1_1.xml", b"x" * 200_000)
    _drop(server.folder, "General_Election_2024_SOP_1.xml", b"<state/>")
    folder = _folder(server)
    folder.settled(set())
    assert sorted(folder.settled(set())) == [
        "General_Election_2024_SOP_1.xml",
        "General_Election_2024_result_1_1.xml",
    ]
    raw, size = folder.read("General_Election_2024_result_1_1.xml", 1001)
    assert (len(raw), size) == (1001, 200_000)
    assert folder.read("General_Election_2024_SOP_1.xml", 1001) == (b"<state/>", 8)
    folder.close()


def _ingest(folder: FtpFolder, output: FakeOutput, max_file_bytes: int) -> PaFolderIngest:
    progress = IngestProgress(
        fakeredis.FakeRedis(), "test:", register().election_id, mapping().source
    )
    check = TotalsCheck(nothing_tallied(), output, mapping(), "declarations", wait_s=0.0)
    return PaFolderIngest(
        folder, progress, output, mapping(), register(), max_file_bytes, totals_check=check
    )


def test_the_ingest_refuses_a_file_too_large_as_such_and_takes_the_rest(server: Server) -> None:
    files = _first_files(4)
    for item in files:
        _drop(server.folder, item.key, item.value)
    _drop(server.folder, "General_Election_2024_result_9999_1.xml", b"<" * 100_000)
    output = FakeOutput()
    ingest = _ingest(_folder(server), output, max(len(item.value) for item in files))
    assert ingest.poll().files == 0
    report = ingest.poll()
    assert (report.published, report.states_of_parties) == (2, 2)
    assert report.refused == {"xml_too_large": 1}
    [(key, letter, _)] = output.dead
    assert key == b"General_Election_2024_result_9999_1.xml" and letter.size == 100_000


def test_without_mlsd_the_folder_is_listed_with_nlst_and_size(tmp_path: Path) -> None:
    with Server(tmp_path / "pa", mlsd=False).running() as server:
        folder = _folder(server)
        assert folder.settled(set()) == []
        path = server.folder / "General_Election_2024_SOP_1.xml"
        path.write_bytes(b"<sta")
        assert folder.settled(set()) == []
        path.write_bytes(b"<state/>")
        assert folder.settled(set()) == []
        assert folder.settled(set()) == [path.name]
        assert folder.read(path.name, 100) == (b"<state/>", 8)
        assert "NLST" in server.commands and f"SIZE {path.name}" in server.commands
        folder.close()


def test_a_server_down_then_up_loses_nothing_and_waits_its_turn_to_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    files = _first_files(6)
    server = Server(tmp_path / "pa")
    output = FakeOutput()
    with server.running():
        for item in files[:2]:
            _drop(server.folder, item.key, item.value)
        folder = _folder(server, clock)
        ingest = _ingest(folder, output, 1024 * 1024)
        assert ingest.poll().files == 0
        assert folder.settled(set()) != []  # the files are settled: the next read needs the server
    # Down between the listing and the downloads: the poll stops, records nothing, raises nothing.
    with pytest.raises(FolderUnreachable):
        folder.read(files[0].key, 100)
    caplog.clear()
    assert ingest.poll().files == 0
    assert ingest.poll().files == 0 and not output.published
    attempts = len(server.commands)
    clock.now += RECONNECT_MAX_S
    assert ingest.poll().files == 0  # refused: one more line, and a longer wait
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert "Traceback" not in caplog.text
    with server.running():
        for item in files[2:]:
            _drop(server.folder, item.key, item.value)
        assert ingest.poll().files == 0 and len(server.commands) == attempts  # still waiting
        clock.now += RECONNECT_MAX_S
        # The two seen before the outage are settled already; the four new ones need a look.
        assert [ingest.poll().files, ingest.poll().files] == [2, 4]
        assert len(output.published) == 3
        clock.now += RECONNECT_MAX_S
        assert ingest.poll().files == 0
    folder.close()


def test_a_connection_cut_mid_poll_stops_it_there_and_the_rest_follow_in_order(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    files = _first_files(6)
    for item in files:
        _drop(server.folder, item.key, item.value)
    output = FakeOutput()
    ingest = _ingest(_folder(server, clock), output, 1024 * 1024)
    assert ingest.poll().files == 0
    server.hang_ups = 1
    mark = len(server.commands)
    caplog.clear()
    assert ingest.poll().files == 0 and not output.published and not output.dead
    # One download tried, none after it; one line said why.
    assert len([f for f in _retrieved(server.since(mark)) if f != TIMESTAMP]) == 1
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]
    clock.now += RECONNECT_MAX_S
    assert ingest.poll().files == 6 and len(output.published) == 3
    in_order = sorted((item.key for item in files), key=intake_order)
    taken = _retrieved(server.since(mark))
    assert [f for f in taken if f != TIMESTAMP] == [in_order[0], *in_order]


def test_the_credentials_never_reach_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="streams")
    clock = Clock()
    with Server(tmp_path / "pa").running() as server:
        _drop(server.folder, "General_Election_2024_SOP_1.xml", b"<x/>")
        good = _folder(server, clock)
        good.settled(set())
        good.close()
        wrong = FtpFolder(parse_ftp_url(server.url(USER, PASSWORD + "x")), clock=clock)
        assert wrong.settled(set()) == []
        (server.folder / TIMESTAMP).unlink()
        stampless = _folder(server, clock)
        stampless.settled(set())
    assert good.settled(set()) == []  # the server is gone
    clock.now += RECONNECT_MAX_S
    assert good.settled(set()) == []
    ours = [r for r in caplog.records if r.name.startswith("streams")]
    assert len(ours) >= 4, [r.getMessage() for r in ours]
    for record in ours:
        line = record.getMessage()
        assert USER not in line and PASSWORD not in line, line
        assert f"ftp://{LOOPBACK}:{server.port}/" in line
    assert USER not in repr(good.location) and PASSWORD not in repr(good.location)


def test_an_ftp_url_is_read_and_a_bad_one_refused_without_repeating_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    location = parse_ftp_url("ftp://desk:p%40ss%20word@ftp.example.org/results/ge2024")
    assert (location.host, location.port, location.folder) == (
        "ftp.example.org",
        21,
        b"results/ge2024",
    )
    assert (location.user, location.password) == ("desk", "p@ss word")
    assert location.public == "ftp://ftp.example.org:21/results/ge2024"
    anonymous = parse_ftp_url("ftp://127.0.0.1:2121/")
    assert (anonymous.user, anonymous.password, anonymous.folder) == ("anonymous", "", b"")
    for bad in ("http://h/", "ftp:///x", "ftp://u:p@h:port/", "ftp://h/x?y"):
        with pytest.raises(FtpUrlError):
            parse_ftp_url(bad)
    with pytest.raises(SystemExit):
        parse_args(["pa", "--ftp", f"ftp://{USER}:{PASSWORD}@h:port/"])
    err = capsys.readouterr().err
    assert "--ftp" in err and USER not in err and PASSWORD not in err
    with pytest.raises(SystemExit):
        parse_args(["pa", "--watch", "/tmp", "--ftp", "ftp://h/"])
    with pytest.raises(SystemExit):
        parse_args(["pa"])
    assert parse_args(["pa", "--ftp", "ftp://h/"]).watch is None


def test_election_replay_serves_the_pack_read_only_with_its_timestamp(tmp_path: Path) -> None:
    out, log = tmp_path / "pack", tmp_path / "replay.log"
    command = [sys.executable, "-m", "scripts.replay", "--format", "pa", "--out", str(out)]
    command += ["--serve-ftp", "--ftp-port", "0", "--speed", "max", "--until", "23:45"]
    with log.open("wb") as stderr:
        replay = subprocess.Popen(command, cwd=ROOT, stderr=stderr, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "still serving" not in log.read_text():
            assert replay.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        [url] = set(re.findall(r"ftp://127\.0\.0\.1:\d+/", log.read_text()))
        written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        assert written and (out / TIMESTAMP).is_file()
        folder = FtpFolder(parse_ftp_url(url))
        folder.settled(set())
        assert sorted(folder.settled(set())) == written
        with ftplib.FTP() as client:
            client.connect(LOOPBACK, int(url.rsplit(":", 1)[1].strip("/")), timeout=5)
            client.login()
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                client.storbinary("STOR intruder.xml", io.BytesIO(b"<x/>"))
        folder.close()
    finally:
        # SIGTERM, as a service manager stops it: whoever runs the tests may have started
        # them as a background job, whose children ignore Ctrl-C's SIGINT from the start.
        replay.send_signal(signal.SIGTERM)
        try:
            stopped = replay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replay.kill()  # never left behind serving, whatever this test found
            raise AssertionError(f"not stopped by SIGTERM:\n{log.read_text()}") from None
        assert stopped == 0, log.read_text()
    assert not (out / "intruder.xml").exists()


def test_the_folder_tells_when_each_file_was_written_from_mlsd_and_not_of_uploads(
    server: Server,
) -> None:
    server.folder.mkdir(parents=True, exist_ok=True)
    written = {"General_Election_2024_SOP_1.xml": 1_720_143_312, "upload.xml.part": 1_720_143_400}
    for name, at in written.items():
        (server.folder / name).write_bytes(b"<x/>")
        os.utime(server.folder / name, (at, at))
    folder = _folder(server)
    folder.settled(set())
    assert folder.written_at() == {"General_Election_2024_SOP_1.xml": 1_720_143_312 * 10**9}


@pytest.mark.parametrize(
    ("fact", "ns"),
    [
        ("20240705013512", 1_720_143_312 * 10**9),
        ("20240705013512.25", 1_720_143_312_250_000_000),
        ("20240705013512.1234567891", 1_720_143_312_123_456_789),
        (None, None),
        ("2024070501351", None),
        ("20241305013512", None),
        ("20240705013512.x", None),
        ("2024-07-05T01:35", None),
    ],
)
def test_mlsd_modify_is_read_as_nanoseconds_and_anything_else_as_unknown(
    fact: str | None, ns: int | None
) -> None:
    assert modify_ns(fact) == ns
