"""A drop folder as the ingest sees it: files that have stopped changing, hidden ones ignored.

A writer that renames a finished file into place (as `election-replay --format pa` does)
is never seen half-written: its temporary name starts with a dot and is never read. A
writer that writes in place is caught by the size and modification time: a file is taken
only once they are the same at two polls in a row. Only regular files are read; a symbolic
link or folder dropped in is passed over, so nothing outside the folder is ever opened.

`FeedFolder` is what the ingest asks of any folder of the feed's files: this one, or PA's
folder on an FTP server (ftp_folder.py). Each also tells when its files were last written, as
far as it knows: a listing is not a snapshot (a file renamed in while the folder is read can
be missed while a later one is seen), so the ingest checks PA's totals only when the folder's
own times put them after everything it took and before everything still to take.
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Protocol

HIDDEN = "."


def name_bytes(name: str) -> bytes:
    """A file name as the file system gave it: one that is not UTF-8 survives the round trip."""
    return name.encode("utf-8", "surrogateescape")


def name_text(raw: bytes) -> str:
    """The inverse of `name_bytes`."""
    return raw.decode("utf-8", "surrogateescape")


class FolderUnreachable(OSError):
    """No file of the folder can be read now (its server is gone): the rest wait a poll."""


class FeedFolder(Protocol):
    def settled(self, handled: Container[str]) -> list[str]:
        """Names of files not yet handled, whole and ready to read."""
        ...

    def read(self, name: str, limit: int) -> tuple[bytes, int]:
        """The file's first `limit` bytes and its whole size; OSError when it cannot be read
        now, FolderUnreachable when no file can."""
        ...

    def written_at(self) -> Mapping[str, int | None]:
        """Each file of the last look that will be taken once settled, with when it was last
        written (nanoseconds since the epoch), None when the folder does not say."""
        ...


class DropFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_look: dict[str, tuple[int, int]] = {}

    def settled(self, handled: Container[str]) -> list[str]:
        """Names of files not yet handled that have not changed since the previous look."""
        now: dict[str, tuple[int, int]] = {}
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.name.startswith(HIDDEN) or entry.name in handled:
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except OSError:  # gone between listing and looking: the next poll says
                    continue
                now[entry.name] = (stat.st_size, stat.st_mtime_ns)
        settled = [name for name, look in now.items() if self._last_look.get(name) == look]
        self._last_look = now
        return settled

    def written_at(self) -> Mapping[str, int | None]:
        """Each file of the last look with its modification time (a rename keeps it)."""
        return {name: mtime_ns for name, (_, mtime_ns) in self._last_look.items()}

    def read(self, name: str, limit: int) -> tuple[bytes, int]:
        """The file's first `limit` bytes and its whole size; OSError when it cannot be read."""
        with (self.path / name).open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return handle.read(limit), size
