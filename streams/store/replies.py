"""Redis's replies read back: the client gives bytes, the store's code wants text."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """A reply (bytes, or a value a test's client gave as text or a number) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
