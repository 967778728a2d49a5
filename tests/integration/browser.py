"""Launch Debian's Chromium under Playwright with the flags this closed network needs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, sync_playwright

# Debian's package, never a browser Playwright downloads: the network here has no route to one.
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))

# Without the background-networking flags Chromium keeps dialling Google's services, and the
# closed network refuses each attempt; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing_reason() -> str | None:
    """Why a browser test cannot run here, or None if Chromium is installed."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not installed (apt-get install -y --no-install-recommends chromium)"
    return None


class ChromiumMissing(RuntimeError):
    """Chromium is not installed; browser tests fail with this reason, they never skip."""


@contextmanager
def chromium(**context_options: Any) -> Iterator[BrowserContext]:
    """A browser context in a fresh, throwaway profile; closed and deleted on exit."""
    missing = chromium_missing_reason()
    if missing is not None:
        raise ChromiumMissing(missing)
    with (
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
    ):
        # A persistent context is the one way to give Chromium its own --user-data-dir here;
        # Playwright refuses that flag in `args`.
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            **context_options,
        )
        try:
            yield context
        finally:
            context.close()
