"""A rehearsal pack's folder served read-only over FTP on loopback, as PA serves its feed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

LOOPBACK = "127.0.0.1"
# How long the server's loop waits for a socket event before it looks whether to stop.
STOP_CHECK_S = 0.1


@contextmanager
def serving(server: FTPServer) -> Iterator[None]:
    """`server` answers from a background thread until the block ends; then it is closed,
    with every connection it had."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=STOP_CHECK_S, blocking=False, handle_exit=False)

    thread = threading.Thread(target=loop, name=f"ftp-{server.address[1]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close_all()


@contextmanager
def read_only_ftp(folder: Path, port: int) -> Iterator[str]:
    """`folder` over FTP on 127.0.0.1:`port` (0: a free one) to anonymous users, who may list
    and download and nothing else; yields the URL to give `election-ingest pa --ftp`."""
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(folder), perm="elr")
    # A class of its own: pyftpdlib reads the authorizer from the handler class.
    handler = type("PackHandler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer((LOOPBACK, port), handler)
    with serving(server):
        yield f"ftp://{LOOPBACK}:{server.address[1]}/"
