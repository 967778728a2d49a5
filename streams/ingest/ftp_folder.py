"""PA's feed folder on an FTP server as the ingest sees it: `.timestamp` first, then new files.

PA's clients poll the folder's `.timestamp` file, which PA rewrites whenever the folder
changes, and list the folder only when its content differs from the last listing's, so a
quiet night costs one small download a poll. The folder is listed again, changed or not,
while a file seen is not handled yet: a file is taken once its size and modification time
are the same at two listings in a row, as in the drop folder, and hidden names and the
temporary names of uploads in progress are never taken. MLSD gives both facts in one
listing; a server without it is listed with NLST and asked each new file's SIZE (and then
the folder cannot tell when a file was written, so PA's totals are checked only in a poll
that took nothing else and left nothing waiting).

A connection lost, refused or timed out is one line in the log; the next attempt waits
its turn on the retry schedule (streams/rules/backoff.py) and nothing seen is forgotten
meanwhile. The URL's user name and password are never logged.
"""

from __future__ import annotations

import calendar
import ftplib
import logging
import random
import time
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from streams.ingest.drop_folder import HIDDEN, FolderUnreachable, name_bytes, name_text
from streams.rules.backoff import backoff_delay

log = logging.getLogger(__name__)

TIMESTAMP = ".timestamp"
FTP_PORT = 21
# Names uploaders give a file they are still writing (WinSCP's .filepart, the common others).
TEMPORARY_SUFFIXES = (".part", ".filepart", ".tmp", ".partial")
# Every socket operation, control or data, gives up after this.
TIMEOUT_S = 10.0
RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0
# PA writes a time into `.timestamp`: anything longer is compared by its start.
MAX_TIMESTAMP_BYTES = 4096
BLOCK_BYTES = 64 * 1024
# The replies of a server that has no MLSD: not understood, not implemented (for that argument).
NOT_IMPLEMENTED = ("500", "502", "504")
# Latin-1 maps every byte to one character: names and paths cross ftplib as the bytes the
# server sent, so a name that is not UTF-8 is still taken (as the drop folder takes it).
WIRE_ENCODING = "latin-1"
# RFC 3659's time-val: YYYYMMDDHHMMSS in UTC, then optionally a fraction of a second.
MODIFY_DIGITS = 14


class FtpUrlError(ValueError):
    """An FTP URL the ingest cannot use; the message never repeats the URL."""


@dataclass(frozen=True)
class FtpLocation:
    """Where the feed's folder is and how to log in; only `public` may be shown."""

    host: str
    port: int
    folder: bytes
    user: str = field(repr=False)
    password: str = field(repr=False)

    @property
    def public(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ftp://{host}:{self.port}/{self.folder.decode('utf-8', 'replace')}"


def parse_ftp_url(url: str) -> FtpLocation:
    """`ftp://user:password@host:port/path`: the path is the folder, from the login's own (as
    in curl); no user name logs in anonymously."""
    try:
        parts = urlsplit(url)
        port = parts.port or FTP_PORT
    except ValueError:
        raise FtpUrlError("not an FTP URL with a numeric port") from None
    if parts.scheme != "ftp" or not parts.hostname:
        raise FtpUrlError("not an ftp://[user:password@]host[:port]/folder URL")
    if parts.query or parts.fragment:
        raise FtpUrlError("an FTP folder's URL has no ?query or #fragment")
    return FtpLocation(
        host=parts.hostname,
        port=port,
        folder=unquote_to_bytes(parts.path.lstrip("/")),
        user=unquote(parts.username or "anonymous"),
        password=unquote(parts.password or ""),
    )


def _wire(text: str) -> str:
    return name_bytes(text).decode(WIRE_ENCODING)


def _from_wire(wire: str) -> str:
    return name_text(wire.encode(WIRE_ENCODING))


def _being_written(name: str) -> bool:
    return name.endswith(TEMPORARY_SUFFIXES)


def modify_ns(fact: str | None) -> int | None:
    """MLSD's `modify` fact in nanoseconds since the epoch; None when absent or malformed."""
    if fact is None:
        return None
    whole, _, fraction = fact.partition(".")
    if (
        len(whole) != MODIFY_DIGITS
        or not whole.isdigit()
        or not (fraction.isdigit() or not fraction)
    ):
        return None
    try:
        at = time.strptime(whole, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    nanoseconds = int(fraction[:9].ljust(9, "0")) if fraction else 0
    return calendar.timegm(at) * 1_000_000_000 + nanoseconds


@dataclass(frozen=True)
class _Look:
    size: int | None
    modified: str | None


class FtpFolder:
    """The two methods of a drop folder over one FTP control connection, kept between polls."""

    def __init__(
        self,
        location: FtpLocation,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self._timeout_s = timeout_s
        self._clock = clock
        self._ftp: ftplib.FTP | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._listed = False
        self._stamp: bytes | None = None
        self._told_no_stamp = False
        self._mlsd = True
        self._last_look: dict[str, _Look] = {}

    def settled(self, handled: Container[str]) -> list[str]:
        """Names of files not yet handled that have not changed since the previous listing;
        none while the server cannot be reached."""
        ftp = self._connection()
        if ftp is None:
            return []
        try:
            stamp = self._timestamp(ftp)
            waiting = any(name not in handled for name in self._last_look)
            if self._listed and stamp is not None and stamp == self._stamp and not waiting:
                return []
            now = dict(self._listing(ftp, handled))
        except (OSError, EOFError, ftplib.Error) as exc:
            self._lost(exc)
            return []
        self._failures = 0
        self._listed, self._stamp = True, stamp
        settled = [
            name
            for name, look in now.items()
            if not _being_written(name) and self._last_look.get(name) == look
        ]
        self._last_look = now
        return settled

    def read(self, name: str, limit: int) -> tuple[bytes, int]:
        """The file's first `limit` bytes and its size as listed. OSError when this file
        cannot be read now; FolderUnreachable when the connection is gone."""
        ftp = self._ftp
        if ftp is None:
            raise FolderUnreachable(f"no connection to {self.location.public}")
        try:
            raw = self._retrieve(ftp, _wire(name), limit)
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            if not str(exc).startswith("421"):  # 421: the server is closing the connection
                raise OSError(self._scrubbed(exc)) from None
            self._lost(exc)
            raise FolderUnreachable(f"lost {self.location.public}") from None
        except (OSError, EOFError, ftplib.Error) as exc:
            self._lost(exc)
            raise FolderUnreachable(f"lost {self.location.public}") from None
        listed = self._last_look.get(name, _Look(None, None)).size
        return raw, max(listed or 0, len(raw))

    def written_at(self) -> Mapping[str, int | None]:
        """Each file of the last listing but uploads in progress, with MLSD's `modify`."""
        return {
            name: modify_ns(look.modified)
            for name, look in self._last_look.items()
            if not _being_written(name)
        }

    def close(self) -> None:
        if self._ftp is not None:
            self._ftp.close()
            self._ftp = None

    def _connection(self) -> ftplib.FTP | None:
        if self._ftp is not None:
            return self._ftp
        if self._clock() < self._next_attempt:
            return None
        ftp = ftplib.FTP(timeout=self._timeout_s, encoding=WIRE_ENCODING)
        try:
            ftp.connect(self.location.host, self.location.port)
            ftp.login(_wire(self.location.user), _wire(self.location.password))
            if self.location.folder:
                ftp.cwd(self.location.folder.decode(WIRE_ENCODING))
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            self._lost(exc)
            return None
        if self._failures:
            log.info("FTP feed %s reached again", self.location.public)
        self._ftp = ftp
        return ftp

    def _lost(self, exc: BaseException) -> None:
        self.close()
        self._failures += 1
        delay = backoff_delay(self._failures, RECONNECT_FIRST_S, RECONNECT_MAX_S, random.random())
        self._next_attempt = self._clock() + delay
        log.warning(
            "FTP feed %s unreachable (%s); trying again in %.1fs",
            self.location.public,
            self._scrubbed(exc),
            delay,
        )

    def _scrubbed(self, exc: BaseException) -> str:
        """The error as a line of the log, with nothing of the credentials in it."""
        said = str(exc).splitlines()
        text = f"{type(exc).__name__}: {said[0]}" if said else type(exc).__name__
        for secret in (self.location.password, self.location.user):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _timestamp(self, ftp: ftplib.FTP) -> bytes | None:
        """The folder's `.timestamp`; None when it cannot be had, and the folder is listed."""
        try:
            return self._retrieve(ftp, TIMESTAMP, MAX_TIMESTAMP_BYTES)
        except ftplib.error_temp as exc:
            if str(exc).startswith("421"):  # the server is closing the connection
                raise
            return None  # busy being rewritten, say: this poll lists, which is always safe
        except ftplib.error_perm as exc:
            if not self._told_no_stamp:
                log.warning(
                    "FTP feed %s has no readable %s (%s): listing it at every poll",
                    self.location.public,
                    TIMESTAMP,
                    self._scrubbed(exc),
                )
                self._told_no_stamp = True
            return None

    def _retrieve(self, ftp: ftplib.FTP, wire_name: str, limit: int) -> bytes:
        """At most `limit` bytes of a file: a longer one's transfer is cut there."""
        ftp.voidcmd("TYPE I")
        received = bytearray()
        with ftp.transfercmd(f"RETR {wire_name}") as data:
            while len(received) < limit:
                chunk = data.recv(min(BLOCK_BYTES, limit - len(received)))
                if not chunk:
                    break
                received += chunk
        try:
            ftp.voidresp()
        except (ftplib.error_temp, ftplib.error_perm):
            # Closing the data connection early aborts the transfer, which the server reports.
            if len(received) < limit:
                raise
        return bytes(received)

    def _listing(self, ftp: ftplib.FTP, handled: Container[str]) -> Iterator[tuple[str, _Look]]:
        """Each regular file of the folder not handled yet, hidden ones left out."""
        if self._mlsd:
            try:
                entries = list(ftp.mlsd())
            except ftplib.error_perm as exc:
                if not str(exc).startswith(NOT_IMPLEMENTED):
                    raise
                log.info("FTP feed %s has no MLSD: NLST and SIZE instead", self.location.public)
                self._mlsd = False
            else:
                for wire_name, facts in entries:
                    name = _from_wire(wire_name)
                    if facts.get("type", "").lower() != "file" or not self._new(name, handled):
                        continue
                    size = facts.get("size", "")
                    yield name, _Look(int(size) if size.isdigit() else None, facts.get("modify"))
                return
        try:
            wire_names = ftp.nlst()
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            if str(exc).startswith(("550", "450")):  # what some servers say of an empty folder
                return
            raise
        ftp.voidcmd("TYPE I")  # SIZE counts the bytes of the binary transfer
        for wire_name in wire_names:
            name = _from_wire(wire_name)
            if "/" in name or not self._new(name, handled):
                continue
            try:
                bytes_long = ftp.size(wire_name)
            except ftplib.error_perm:  # a folder, or gone since the listing
                continue
            yield name, _Look(bytes_long, None)

    @staticmethod
    def _new(name: str, handled: Container[str]) -> bool:
        return not name.startswith(HIDDEN) and name not in handled
