"""Entry point of a worker process: `election-worker`, or `faust -A streams.worker worker`."""

from __future__ import annotations

import sys
from functools import cache

from streams.pipeline.app import create_app
from streams.pipeline.context import ElectionApp
from streams.settings import get_settings


@cache
def worker_app() -> ElectionApp:
    """The app of this process, from the environment's settings, with Faust's data folder."""
    settings = get_settings()
    # Faust makes its data folder when the worker starts, but not the folders above it.
    (settings.run_dir / "faust").mkdir(parents=True, exist_ok=True)
    return create_app(settings)


def __getattr__(name: str) -> ElectionApp:
    # `faust -A streams.worker` looks up `app` here: built then, not when this is imported.
    if name == "app":
        return worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console entry point: `election-worker` runs a worker (Faust's own arguments also work)."""
    if len(sys.argv) == 1:
        sys.argv += ["worker", "-l", "info", "--web-host", get_settings().web_host]
    worker_app().main()
