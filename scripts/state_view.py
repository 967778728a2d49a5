"""Terminal view of the state of the parties from a worker's API: `election-state [--follow]`."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from schemas.results import StateOfParties
from scripts.state_table import state_table
from streams.settings import Settings, get_settings

TIMEOUT_S = 10.0
# The worker sends a keep-alive comment every 15 s; this long without a byte means it is gone.
STREAM_IDLE_S = 45.0
RETRY_S = 1.0  # until the server says otherwise with `retry:`
MAX_RETRY_S = 30.0

Opener = Callable[..., Any]  # urllib.request.urlopen's shape: (request, timeout=...) -> response


class StateViewError(RuntimeError):
    """A one-line reason the state cannot be shown."""


# ---- server-sent events ----


@dataclass(frozen=True)
class SseEvent:
    """One dispatched server-sent event."""

    event: str
    data: str
    id: str | None


class SseParser:
    """Server-sent events line by line, as the HTML standard parses them.

    Feed it each line without its line ending; it returns an event when a blank line ends one.
    The last event id persists across events, as EventSource keeps it for reconnecting.
    """

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. the worker's keep-alive
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event=event, data="\n".join(data), id=self.last_event_id)


def parse_sse(lines: Iterable[str], parser: SseParser | None = None) -> Iterator[SseEvent]:
    """Every event in a stream of lines (line endings are stripped here)."""
    parser = parser or SseParser()
    for line in lines:
        event = parser.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event


# ---- the API ----


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def fetch_state(base_url: str, opener: Opener = urllib.request.urlopen) -> StateOfParties:
    """GET /api/state, or a StateViewError saying in one line why not."""
    url = base_url.rstrip("/") + "/api/state"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener(request, timeout=TIMEOUT_S) as response:
            body = response.read()
    except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
        raise StateViewError(f"cannot reach the worker at {url}: {_reason(error)}") from None
    try:
        return StateOfParties.model_validate_json(body)
    except ValidationError as error:
        raise StateViewError(
            f"{url} did not answer with a state of the parties ({error.error_count()} errors)"
        ) from None


def state_events(
    base_url: str, parser: SseParser, opener: Opener = urllib.request.urlopen
) -> Iterator[StateOfParties]:
    """The `state` events of one connection to /api/events, resuming after the parser's last id.

    Ends when the server closes the stream; connection errors propagate as OSError.
    """
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if parser.last_event_id:
        headers["Last-Event-ID"] = parser.last_event_id
    request = urllib.request.Request(base_url.rstrip("/") + "/api/events", headers=headers)
    with opener(request, timeout=STREAM_IDLE_S) as response:
        lines = (raw.decode("utf-8", errors="replace") for raw in response)
        for event in parse_sse(lines, parser):
            if event.event == "state":
                yield StateOfParties.model_validate_json(event.data)


# ---- the view ----


class StateScreen:
    """What --follow shows: the newest state of the parties and the connection's status."""

    def __init__(self, state: StateOfParties) -> None:
        self.state = state
        self.status = "live"

    def apply(self, state: StateOfParties) -> bool:
        """Take a state if it is not older than the one shown (a replayed stream sends old ones)."""
        if state.sequence < self.state.sequence:
            return False
        self.state = state
        return True

    def __rich__(self) -> RenderableType:
        style = "green" if self.status == "live" else "yellow"
        return Group(state_table(self.state), Text(f"● {self.status}", style=style))


def follow(
    base_url: str,
    screen: StateScreen,
    opener: Opener = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Keep `screen` on the newest state from the event stream, reconnecting with Last-Event-ID
    whenever the stream drops, until `keep_going()` says stop (or Ctrl-C)."""
    parser = SseParser()
    while keep_going():
        try:
            for state in state_events(base_url, parser, opener):
                screen.status = "live"
                screen.apply(state)
            screen.status = "stream ended · reconnecting"
        except (OSError, ValueError) as error:
            screen.status = f"disconnected ({_reason(error)}) · reconnecting"
        retry_s = parser.retry_ms / 1000 if parser.retry_ms is not None else RETRY_S
        sleep(min(max(retry_s, 0.1), MAX_RETRY_S))


# ---- command line ----


def worker_url(settings: Settings) -> str:
    """The local worker's API as the settings place it (ELECTION_WEB_HOST, ELECTION_WEB_PORT)."""
    host = settings.web_host
    # A worker listening on every interface is reached on loopback from here.
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web_port}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="election-state", description="Show the state of the parties from a worker's API."
    )
    default = worker_url(get_settings())
    parser.add_argument("--url", default=default, help=f"the worker (default {default})")
    parser.add_argument(
        "--follow", action="store_true", help="stay live on the worker's event stream"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(file=out) if out is not None else Console()
    try:
        state = fetch_state(args.url)
    except StateViewError as error:
        print(f"election-state: {error}", file=sys.stderr)
        return 1
    if not args.follow:
        console.print(state_table(state))
        return 0
    screen = StateScreen(state)
    try:
        with Live(screen, console=console, refresh_per_second=4):
            follow(args.url, screen)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
