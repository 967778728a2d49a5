"""The night's own clock: where each change stands in declaration time, and how far to tell it.

Messages reach the workers in another order than the seats declared (four partitions read in
batches, a backlog after a crash, a rehearsal at full speed), so the publisher tells changes
in the order of their keys below, up to a watermark: the earliest point that a partition with
messages still unread could yet deliver. A partition read to its end holds nothing back, so
on a live night, with no lag, nothing waits.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# (declaration time in ms since the epoch, seat name, ONS id, revision). Seats declared in the
# same minute (the 2024 files give minutes) are taken by name, then id: the order the replay
# sends them in, so a clean feed is always in key order, and ties always fall alike.
EventKey = tuple[int, str, str, int]

# Sorts before every real key: a lagging partition that has told us nothing holds back all.
EARLIEST: EventKey = (-1, "", "", 0)


def event_key(at: dt.datetime, name: str = "", ons_id: str = "", revision: int = 0) -> EventKey:
    return (round(at.timestamp() * 1000), name, ons_id, revision)


def key_time(key: EventKey) -> dt.datetime:
    return dt.datetime.fromtimestamp(key[0] / 1000, dt.UTC)


def key_text(key: EventKey) -> str:
    """The key as Redis stores it (a partition's clock); read back by `key_from_text`."""
    ms, name, ons_id, revision = key
    return f"{ms}|{ons_id}|{revision}|{name}"


def key_from_text(text: str) -> EventKey:
    ms, ons_id, revision, name = text.split("|", 3)  # the name last: it may hold a '|'
    return (int(ms), name, ons_id, int(revision))


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far the workers have applied one partition of the declarations topic.

    `applied` is the last offset recorded (-1 for none), `end` the offset up to which every
    message must be applied before the partition holds nothing back (the log's end, or the
    first message sent after the changes to tell) as the broker last said, None when not
    asked; `clock` the key of the last message with a time.
    """

    applied: int
    end: int | None
    clock: EventKey | None

    @property
    def read_to_end(self) -> bool:
        return self.end is not None and self.applied + 1 >= self.end


def watermark(partitions: Iterable[PartitionProgress]) -> EventKey | None:
    """The greatest key that can be told now, or None when no partition holds anything back.

    A partition with messages unread can still deliver anything from its clock on (a clean
    feed is in key order within a partition), and one that has applied nothing yet anything
    at all. A message arriving later than this allows was sent late, and is amended for.
    """
    clocks = [p.clock for p in partitions if not p.read_to_end]
    if not clocks:
        return None
    return min(EARLIEST if clock is None else clock for clock in clocks)


class PartitionStalls:
    """Partitions whose workers stopped applying them hold nothing back for long.

    A message that fails every time, or a partition no worker owns while a group rebalances,
    would otherwise hold the whole night's story. After `stall_s` without its applied offset
    moving, a partition with messages unread is left out of the watermark: what it delivers
    later is late, and amended for.
    """

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.clock = clock
        self._moved: dict[int, tuple[int, float]] = {}  # partition -> (applied, when it moved)

    def moving(self, partitions: Mapping[int, PartitionProgress]) -> list[PartitionProgress]:
        now = self.clock()
        moving = []
        for partition, progress in partitions.items():
            applied, since = self._moved.get(partition, (None, now))
            if applied != progress.applied:
                self._moved[partition] = (progress.applied, now)
                since = now
            if progress.read_to_end or now - since < self.stall_s:
                moving.append(progress)
        return moving
