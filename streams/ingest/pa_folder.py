"""The PA feed's ingest: each poll's settled files published or refused, then recorded."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from schemas.feed_refusal import FeedRefusal
from streams.feeds.pa.cross_check import NotCompared
from streams.feeds.pa.intake import (
    PartyTotals,
    ReadFile,
    ToPublish,
    event_order,
    intake_order,
    read_file,
    take_read,
)
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.refusals import Refusal
from streams.feeds.pa.revisions import SeatTaken
from streams.feeds.pa.xml_reader import DEFAULT_MAX_FILE_BYTES
from streams.ingest.drop_folder import FeedFolder, FolderUnreachable, name_bytes
from streams.ingest.progress import IngestProgress
from streams.ingest.totals_check import TotalsCheck
from streams.rules.reference import Register
from streams.rules.validation import KEPT_PREFIX_BYTES, MAX_KEY_BYTES

log = logging.getLogger(__name__)

# A poll's files are read whole before any is taken (to take them in the night's order): a
# whole night of PA files is a few megabytes, and a folder flooded with files at the size cap
# is read this much a poll, the rest at the next.
MAX_BYTES_PER_POLL = 128 * 1024 * 1024
PUBLISHED = "published"
STATE_OF_PARTIES = "state_of_parties"
REFUSED = "refused:"  # + the reason


class FeedOutput(Protocol):
    def publish(self, key: bytes, value: bytes) -> None: ...
    def dead_letter(self, key: bytes, value: bytes, reason: str) -> None: ...
    def confirm(self) -> None: ...


@dataclass
class PollReport:
    """What one poll did with the files it took."""

    published: int = 0
    states_of_parties: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    # The poll's latest state of the parties against our tallies: agreed, disagreed or
    # not_compared (streams/ingest/totals_check.py).
    checked: Counter[str] = field(default_factory=Counter)

    @property
    def files(self) -> int:
        return self.published + self.states_of_parties + self.refused.total()


def refusal_letter(
    source: str,
    rehearsal: bool,
    election_id: str,
    name: str,
    raw: bytes,
    size: int,
    refusal: Refusal,
    at: dt.datetime,
) -> FeedRefusal:
    return FeedRefusal(
        source=source,
        file_name=name_bytes(name)[:MAX_KEY_BYTES].decode("utf-8", "replace"),
        reason=refusal.reason.value,
        detail=refusal.detail,
        original_b64=base64.b64encode(raw[:KEPT_PREFIX_BYTES]).decode("ascii"),
        size=size,
        sha256=hashlib.sha256(raw).hexdigest(),
        refused_at=at,
        election_id=election_id,
        rehearsal=rehearsal,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def out_of_place(
    state: str,
    written_at: Mapping[str, int | None],
    taken: Collection[str],
    taken_until: int,
    waiting: Collection[str],
) -> str | None:
    """Why PA's state of the parties `state` is not at the moment of the declarations taken,
    or None when it is: it must have been written after every declaration taken (`taken` in
    this poll, up to `taken_until` before it) and before every file still `waiting`. A folder
    listing can miss a file renamed in while it is read and see a later one, so a poll can
    take a seat written after the state and leave one written before it; the count of seats
    alone would then agree and the parties not. A time the folder does not give, or the same
    time (file times are coarse), cannot say which came first, so it is not compared."""
    at = written_at.get(state)
    if at is None:
        if taken or waiting:
            return "the folder does not say when its files were written"
        return None
    if taken_until >= at:
        return "a declaration taken in an earlier poll was written after it"
    for name in sorted(taken):
        when = written_at.get(name)
        if when is None or when >= at:
            return f"{name} was taken with it and may have been written after it"
    for name in sorted(waiting):
        when = written_at.get(name)
        if when is None or when <= at:
            return f"{name} may have been written before it and is still to take"
    return None


class PaFolderIngest:
    """Takes a PA folder (dropped into, or on FTP) into the declarations topic, a poll at a time."""

    def __init__(
        self,
        folder: FeedFolder,
        progress: IngestProgress,
        output: FeedOutput,
        mapping: FeedMapping,
        register: Register,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        clock: Callable[[], dt.datetime] = _now,
        *,
        totals_check: TotalsCheck,
    ) -> None:
        self._folder = folder
        self._progress = progress
        self._output = output
        self._mapping = mapping
        self._register = register
        self._totals_check = totals_check
        self._max_file_bytes = max_file_bytes
        self._clock = clock
        self._handled = progress.handled_files()
        self._seats = progress.seats_taken()
        # When the latest declaration this process took was written (the folder's time).
        self._declarations_until = -1

    def poll(self) -> PollReport:
        """Take every settled file not handled yet; OutputNotAcknowledged or a Redis error
        leaves nothing recorded, and the next poll takes the same files again."""
        report = PollReport()
        seats = dict(self._seats)
        moved: dict[int, SeatTaken] = {}
        files: dict[str, str] = {}
        latest_totals: tuple[str, PartyTotals] | None = None
        read: list[tuple[ReadFile, bytes, int]] = []
        budget = MAX_BYTES_PER_POLL
        for name in sorted(self._folder.settled(self._handled), key=intake_order):
            if budget <= 0:
                break
            try:
                # One byte past the cap, so a file too large is refused as such unread.
                raw, size = self._folder.read(name, self._max_file_bytes + 1)
            except FolderUnreachable:
                break  # the folder logged why; the files after this one wait, in order
            except OSError as exc:
                log.warning("cannot read %r yet (%s): next poll", name, exc)
                continue
            budget -= len(raw)
            read.append((read_file(name, raw, self._max_file_bytes), raw, size))
        for parsed, raw, size in sorted(read, key=lambda item: event_order(item[0])):
            name = parsed.name
            outcome = take_read(parsed, seats, self._mapping, self._register)
            if isinstance(outcome, ToPublish):
                declaration = outcome.declaration
                self._output.publish(
                    declaration.constituency_id.encode(), declaration.model_dump_json().encode()
                )
                seats[outcome.seat_number] = moved[outcome.seat_number] = outcome.taken
                files[name] = PUBLISHED
                report.published += 1
            elif isinstance(outcome, PartyTotals):
                files[name] = STATE_OF_PARTIES
                report.states_of_parties += 1
                latest_totals = (name, outcome)
            else:
                letter = refusal_letter(
                    self._mapping.source,
                    self._mapping.rehearsal,
                    self._register.election_id,
                    name,
                    raw,
                    size,
                    outcome,
                    self._clock(),
                )
                self._output.dead_letter(
                    name_bytes(name)[:MAX_KEY_BYTES],
                    letter.model_dump_json().encode(),
                    outcome.reason.value,
                )
                log.warning("refused %r: %s (%s)", name, outcome.reason.value, outcome.detail)
                files[name] = REFUSED + outcome.reason.value
                report.refused[outcome.reason.value] += 1
        if not files:
            return report
        # Published, then recorded. A crash between the two publishes this poll's declarations
        # again after the restart: the worker takes a seat's revision once and counts the
        # repeat as a duplicate, so that is harmless (a refused file's dead letter may repeat).
        self._output.confirm()
        self._progress.record(files, moved)
        self._seats = seats
        self._handled.update(files)
        written_at = self._folder.written_at()
        published = [name for name, outcome in files.items() if outcome == PUBLISHED]
        if latest_totals is not None:
            name, totals = latest_totals
            waiting = [other for other in written_at if other not in self._handled]
            why_not = out_of_place(name, written_at, published, self._declarations_until, waiting)
            if why_not is None:
                verdict = self._totals_check.check(name, totals.revision, totals.totals)
                report.checked[verdict.outcome] += 1
            else:
                log.info("%s not compared: %s", name, why_not)
                report.checked[NotCompared.outcome] += 1
        for name in published:
            self._declarations_until = max(self._declarations_until, written_at.get(name) or -1)
        return report
