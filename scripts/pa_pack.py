"""The night as PA's files in a drop folder: the rehearsal pack of `election-replay --format pa`.

Each declaration of the replay's feed becomes the PA file of its kind, named as PA names it;
after each one that moves the national picture (a rush, result or correction taken over an
older revision of its seat) comes a state of the parties, numbered by the changes so far.
The exit poll has no PA message and is left out. A file is written under a hidden temporary
name and then renamed, so a reader of the folder never sees half a file. A pack served over
FTP also has PA's `.timestamp`, rewritten (the same way) after each file with the time it
changed, which an FTP reader fetches first to know whether to list the folder.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from schemas.declaration import Declaration, DeclarationKind
from scripts.chaos import EXIT_POLL, Outgoing
from streams.feeds.pa.file_names import seat_file_name, state_file_name
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.xml_writer import ROOTS, declaration_xml, state_of_parties_xml
from streams.rules.reference import Register
from streams.rules.tally import Contribution, seat_contribution, state_of_parties

# The election part of every file name of the pack.
PA_ELECTION = "General_Election_2024"
STATE_OF_PARTIES = "state_of_parties"
# A file being written is hidden: the drop-folder ingest never reads a name starting with it.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".part"
# PA's own name; hidden, so the drop-folder ingest never reads it either.
TIMESTAMP = ".timestamp"


@dataclass
class _Tally:
    """The national counters as PA's own desk would keep them: each seat's highest revision."""

    register: Register
    totals: dict[str, int] = field(default_factory=dict)
    by_seat: dict[str, tuple[int, Contribution]] = field(default_factory=dict)
    as_of: dt.datetime | None = None

    def take(self, declaration: Declaration) -> bool:
        """Count `declaration` if it is newer than its seat's; False when nothing moved."""
        revision, before = self.by_seat.get(declaration.constituency_id, (0, {}))
        if declaration.revision <= revision:
            return False
        seat = self.register.constituencies[declaration.constituency_id]
        after = seat_contribution(declaration, seat, before)
        self.by_seat[declaration.constituency_id] = (declaration.revision, after)
        for key in before.keys() | after.keys():
            value = self.totals.get(key, 0) + after.get(key, 0) - before.get(key, 0)
            if value:
                self.totals[key] = value
            else:
                self.totals.pop(key, None)
        self.as_of = max(self.as_of or declaration.declared_at, declaration.declared_at)
        return declaration.kind is not DeclarationKind.RECOUNT


def pa_feed(feed: Sequence[Outgoing], mapping: FeedMapping, register: Register) -> list[Outgoing]:
    """The feed's declarations as PA files (key: the file name, value: its XML), each followed
    by a state of the parties when it moved the picture. A message re-sent under a name
    already written is left out: in a folder it is the same file again."""
    tally = _Tally(register)
    names: set[str] = set()
    files: list[Outgoing] = []
    changes = 0
    for item in feed:
        if item.kind == EXIT_POLL:
            continue
        declaration = Declaration.model_validate_json(item.value)
        number = mapping.seat_numbers[declaration.constituency_id]
        name = seat_file_name(PA_ELECTION, ROOTS[declaration.kind], number, declaration.revision)
        if name in names:
            continue
        names.add(name)
        body = declaration_xml(declaration, mapping, register)
        files.append(Outgoing(name, body, item.label, item.at, item.kind, item.seat_declared))
        if tally.take(declaration):
            changes += 1
            state = state_of_parties(
                tally.totals, register, changes, tally.as_of, declaration.constituency_id
            )
            body = state_of_parties_xml(state, mapping, register)
            name = state_file_name(PA_ELECTION, changes)
            files.append(Outgoing(name, body, STATE_OF_PARTIES, item.at, STATE_OF_PARTIES))
    return files


def write_atomically(folder: Path, name: str, body: bytes) -> None:
    """`folder/name` appears whole or not at all: written hidden, flushed, then renamed."""
    temporary = folder / f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}"
    with temporary.open("wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / name)


@contextmanager
def folder_sender(folder: Path, stamped: bool = False) -> Iterator[Callable[[str, bytes], None]]:
    """A replay sender that drops each (file name, XML) into `folder`, made if missing; when
    `stamped`, `folder/.timestamp` is written at once and again after each file."""
    folder.mkdir(parents=True, exist_ok=True)

    def stamp() -> None:
        # The wall clock to the microsecond, not the night's: two files of the same moment
        # of the night must still change what a reader compares.
        changed = dt.datetime.now(dt.UTC).isoformat()
        write_atomically(folder, TIMESTAMP, changed.encode("ascii"))

    def send(name: str, body: bytes) -> None:
        write_atomically(folder, name, body)
        if stamped:
            stamp()

    if stamped:
        stamp()

    yield send
