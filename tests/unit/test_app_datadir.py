"""The worker's Faust data folder lives under ELECTION_RUN_DIR and exists before Faust needs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_fresh_run_dir_gets_the_faust_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "fresh" / ".run"  # nothing of it exists yet, as on a new clone
    env = {k: v for k, v in os.environ.items() if k != "APP_DATADIR"}
    env["ELECTION_RUN_DIR"] = str(run_dir)
    done = subprocess.run(
        [sys.executable, "-c", "from streams.worker import app; print(app.conf.datadir)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    datadir = Path(done.stdout.strip())
    assert datadir.parent == run_dir / "faust"
    # Faust creates datadir itself with a plain mkdir: its parent must already be there.
    assert datadir.parent.is_dir()
