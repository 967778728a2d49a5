"""PA's state of the parties checked against our tallies once they have caught up with the ingest.

A poll's states of the parties come after its declarations, so only its latest is checked,
once the poll's messages are on Kafka and recorded: an earlier one tells of a moment our
tallies are already past (and the ingest checks none whose place among the files it cannot
be sure of: `out_of_place` in pa_folder.py). The check waits for the workers to apply every
declaration the ingest sent and reach PA's number of declared seats, at most `wait_s`, so a
lagging worker delays the next poll by that at most and never holds up a file; one not there
in time is "not compared: we had X of Y seats". A disagreement is logged and told to the
newsroom topic as a `feed_check` (schemas/feed_check.py); an agreement is only counted and
logged at debug.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from redis.exceptions import RedisError

from schemas.feed_check import FeedCheck
from schemas.results import StateOfParties
from streams.feeds.pa.cross_check import Disagreed, NotCompared, Verdict, compare, told, unapplied
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaStateOfParties
from streams.ingest.drop_folder import name_bytes
from streams.ingest.kafka_output import OutputNotAcknowledged
from streams.rules.validation import MAX_KEY_BYTES

log = logging.getLogger(__name__)

# Long enough for a worker to apply a poll's declarations on a live night (milliseconds
# each), short enough that a stalled one slows the polls little.
DEFAULT_WAIT_S = 2.0
READ_EVERY_S = 0.05


class OurTallies(Protocol):
    def applied_and_state(self, topic: str) -> tuple[dict[int, int], StateOfParties]: ...


class CheckOutput(Protocol):
    def acknowledged(self) -> Mapping[int, int]: ...
    def tell_newsroom(self, key: bytes, value: bytes) -> None: ...


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TotalsCheck:
    def __init__(
        self,
        tallies: OurTallies,
        output: CheckOutput,
        mapping: FeedMapping,
        declarations_topic: str,
        wait_s: float = DEFAULT_WAIT_S,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._tallies = tallies
        self._output = output
        self._mapping = mapping
        self._topic = declarations_topic
        self._wait_s = wait_s
        self._clock = clock

    def check(self, name: str, revision: int, totals: PaStateOfParties) -> Verdict:
        """PA's `totals` (file `name`, numbered `revision`) against ours, once ours are there."""
        try:
            ours, behind = self._when_there(totals)
        except RedisError as error:
            log.warning("%s not compared: our tallies could not be read: %s", name, error)
            return NotCompared(None, totals.number_of_results, 0)
        verdict = compare(totals, ours, self._mapping, behind)
        if isinstance(verdict, NotCompared):
            log.info(
                "%s not compared: we had %d of %d seats%s",
                name,
                verdict.ours,
                verdict.theirs,
                f", {verdict.unapplied} messages sent still to apply" if verdict.unapplied else "",
            )
        elif isinstance(verdict, Disagreed):
            log.warning(
                "%s disagrees with our tallies at %d seats: %s",
                name,
                ours.seats_declared,
                told(verdict.differences),
            )
            self._tell(name, revision, ours, verdict)
        else:
            log.debug("%s agrees with our tallies at %d seats", name, ours.seats_declared)
        return verdict

    def _when_there(self, totals: PaStateOfParties) -> tuple[StateOfParties, int]:
        """Our state once every declaration sent is applied and it has PA's declared seats
        (or more), or as it is when the wait is over; with the messages still to apply."""
        sent = self._output.acknowledged()
        deadline = time.monotonic() + self._wait_s
        while True:
            applied, ours = self._tallies.applied_and_state(self._topic)
            behind = unapplied(applied, sent)
            there = not behind and ours.seats_declared >= totals.number_of_results
            if there or time.monotonic() >= deadline:
                return ours, behind
            time.sleep(READ_EVERY_S)

    def _tell(self, name: str, revision: int, ours: StateOfParties, verdict: Disagreed) -> None:
        key = name_bytes(name)[:MAX_KEY_BYTES]
        note = FeedCheck(
            election_id=ours.election_id,
            rehearsal=self._mapping.rehearsal,
            source=self._mapping.source,
            file_name=key.decode("utf-8", "replace"),
            feed_revision=revision,
            seats_declared=ours.seats_declared,
            our_sequence=ours.sequence,
            differences=list(verdict.differences),
            checked_at=self._clock(),
        )
        try:
            self._output.tell_newsroom(key, note.model_dump_json().encode())
        except OutputNotAcknowledged as error:
            # The log above still says it; the next state of the parties is checked anew.
            log.error("%s: the newsroom was not told of the disagreement: %s", name, error)
