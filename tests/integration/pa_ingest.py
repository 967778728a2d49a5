"""`election-ingest pa` as a real subprocess on a test pipeline's topics and Redis prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.helpers import LOG_DIR, PROJECT_ROOT
from tests.integration.pipeline import Pipeline


@contextmanager
def pa_ingest(pipeline: Pipeline, folder: Path | str, poll_interval: float = 0.2) -> Iterator[Path]:
    """The ingest watching `folder`, a drop folder or an ftp:// URL, until the block ends (then
    killed); yields its log's path."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"pa-ingest-{uuid.uuid4().hex[:8]}.log"
    where = ["--ftp", folder] if isinstance(folder, str) else ["--watch", str(folder)]
    command = [sys.executable, "-m", "scripts.ingest", "pa", *where]
    command += ["--poll-interval", str(poll_interval)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **pipeline.env()},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "watching" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "the ingest did not start in 60s"
            time.sleep(0.1)
        yield log_path
        assert process.poll() is None, log_path.read_text(errors="replace")
    finally:
        process.kill()
        process.wait(timeout=30)
