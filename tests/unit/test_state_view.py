"""election-state without a network: SSE parsing, reconnecting with Last-Event-ID, rendering."""

from __future__ import annotations

import datetime as dt
import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from rich.console import Console

from schemas.results import PartyTally, StateOfParties
from scripts import state_view
from scripts.state_view import (
    SseEvent,
    SseParser,
    StateScreen,
    StateViewError,
    fetch_state,
    follow,
    parse_sse,
)

ELECTION_ID = "parl.2024-07-04"


def state(sequence: int, lab: int = 0) -> StateOfParties:
    return StateOfParties(
        election_id=ELECTION_ID,
        rehearsal=False,
        sequence=sequence,
        seats_declared=lab,
        total_votes=1000 * lab,
        parties=[PartyTally(party="Lab", name="Labour", seats=lab, votes=1000 * lab, share=1.0)]
        if lab
        else [],
    )


def frame(event_id: int, event: str, body: str) -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


# ---- the parser ----


def test_events_with_ids_types_and_comments() -> None:
    text = 'retry: 1000\n\n: keep-alive\n\nid: 7\nevent: state\ndata: {"a": 1}\n\n'
    parser = SseParser()
    events = list(parse_sse(text.splitlines(keepends=True), parser))
    assert events == [SseEvent(event="state", data='{"a": 1}', id="7")]
    assert parser.retry_ms == 1000
    assert parser.last_event_id == "7"


def test_multi_line_data_default_type_and_crlf() -> None:
    lines = ["data: one\r\n", "data:two\r\n", "\r\n", "data\n", "\n"]
    assert list(parse_sse(lines)) == [
        SseEvent(event="message", data="one\ntwo", id=None),
        SseEvent(event="message", data="", id=None),
    ]


def test_the_last_id_carries_over_and_an_event_without_data_is_dropped() -> None:
    lines = ["id: 3", "event: alert", "", "event: result", "data: x", "", "id", "data: y", ""]
    parser = SseParser()
    events = list(parse_sse(lines, parser))
    # The id-only block dispatches nothing but still moves the id; an empty id resets it.
    assert events == [SseEvent("result", "x", "3"), SseEvent("message", "y", "")]
    assert parser.last_event_id == ""


def test_bad_retry_and_unknown_fields_are_ignored() -> None:
    parser = SseParser()
    assert list(parse_sse(["retry: soon", "retry: -5", "colour: red", "data: z", ""], parser)) == [
        SseEvent("message", "z", None)
    ]
    assert parser.retry_ms is None


# ---- the screen ----


def test_the_screen_keeps_the_newest_state() -> None:
    screen = StateScreen(state(5, lab=3))
    assert not screen.apply(state(4, lab=2))
    assert screen.state.sequence == 5
    assert screen.apply(state(9, lab=7))
    assert screen.state.seats_declared == 7


def test_the_screen_renders_the_table_and_the_status() -> None:
    screen = StateScreen(state(12, lab=4))
    screen.status = "disconnected · reconnecting"
    console = Console(record=True, width=100)
    console.print(screen)
    text = console.export_text()
    assert "State of the parties: 4/650 declared" in text
    assert "Labour (Lab)" in text
    assert "sequence 12" in text
    assert "disconnected · reconnecting" in text


def test_as_of_is_told_in_uk_time_whatever_offset_it_came_with() -> None:
    # Redis keeps the latest declaration time in UTC: Inverness, 18:00 BST on Saturday.
    inverness = state(651).model_copy(
        update={"as_of": dt.datetime(2024, 7, 6, 17, 0, tzinfo=dt.UTC)}
    )
    console = Console(record=True, width=100)
    console.print(StateScreen(inverness))
    assert "as of Sat 06 Jul 18:00" in console.export_text()


# ---- fetching and following, with a fake opener ----


class FakeResponse(io.BytesIO):
    """urlopen's response: bytes read whole or line by line, a context manager."""


class FakeOpener:
    """Answers each call with the next scripted response (bytes) or error."""

    def __init__(self, *answers: bytes | BaseException) -> None:
        self.answers = list(answers)
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> FakeResponse:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return FakeResponse(answer)

    def last_event_ids(self) -> list[str | None]:
        return [r.get_header("Last-event-id") for r in self.requests]


def test_fetch_state_reads_the_api() -> None:
    opener = FakeOpener(state(3, lab=2).model_dump_json().encode())
    assert fetch_state("http://worker:6066/", opener) == state(3, lab=2)
    assert opener.requests[0].full_url == "http://worker:6066/api/state"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "refused"),
        (urllib.error.HTTPError("http://w", 503, "Unavailable", Message(), None), "HTTP 503"),
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_fetch_state_fails_in_one_line(answer: BaseException, reason: str) -> None:
    with pytest.raises(StateViewError) as error:
        fetch_state("http://w", FakeOpener(answer))
    message = str(error.value)
    assert "cannot reach the worker at http://w/api/state" in message
    assert reason in message
    assert "\n" not in message


def test_fetch_state_refuses_something_else() -> None:
    with pytest.raises(StateViewError, match="did not answer with a state"):
        fetch_state("http://w", FakeOpener(b'{"hello": "world"}'))


def test_follow_reconnects_with_the_last_event_id() -> None:
    first = (
        b"retry: 250\n\n"
        + frame(10, "result", "{}")
        + frame(11, "state", state(6, lab=6).model_dump_json())
        + b": keep-alive\n\n"
    )
    second = frame(12, "alert", "{}") + frame(13, "state", state(7, lab=7).model_dump_json())
    opener = FakeOpener(first, urllib.error.URLError("worker restarting"), second)
    screen = StateScreen(state(5, lab=5))
    rounds: Iterator[bool] = iter([True, True, True, False])
    waits: list[float] = []
    follow("http://w", screen, opener, sleep=waits.append, keep_going=lambda: next(rounds))

    assert screen.state.sequence == 7
    assert screen.status == "stream ended · reconnecting"
    assert [r.full_url for r in opener.requests] == ["http://w/api/events"] * 3
    assert opener.last_event_ids() == [None, "11", "11"]
    assert waits == [0.25, 0.25, 0.25]


def test_follow_reports_a_drop_on_the_screen() -> None:
    opener = FakeOpener(ConnectionResetError(104, "Connection reset by peer"))
    screen = StateScreen(state(1))
    rounds = iter([True, False])
    follow("http://w", screen, opener, sleep=lambda s: None, keep_going=lambda: next(rounds))
    assert screen.status.startswith("disconnected (")
    assert "reset" in screen.status


def test_a_stale_state_from_a_replayed_stream_does_not_win() -> None:
    stream = frame(1, "state", state(9, lab=9).model_dump_json()) + frame(
        2, "state", state(3, lab=3).model_dump_json()
    )
    screen = StateScreen(state(0))
    rounds = iter([True, False])
    follow("http://w", screen, FakeOpener(stream), lambda s: None, lambda: next(rounds))
    assert screen.state.sequence == 9


# ---- the command ----


def test_main_prints_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_fetch(url: str, opener: Any = None) -> StateOfParties:
        assert url == "http://elsewhere:7000"
        return state(4, lab=4)

    monkeypatch.setattr(state_view, "fetch_state", fake_fetch)
    out = io.StringIO()
    assert state_view.main(["--url", "http://elsewhere:7000"], out=out) == 0
    assert "4/650 declared" in out.getvalue()


def test_main_says_why_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(url: str, opener: Any = None) -> StateOfParties:
        raise StateViewError(f"cannot reach the worker at {url}/api/state: Connection refused")

    monkeypatch.setattr(state_view, "fetch_state", unreachable)
    assert state_view.main(["--follow"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "election-state: cannot reach the worker at http://127.0.0.1:6066/api/state:"
        " Connection refused\n"
    )
