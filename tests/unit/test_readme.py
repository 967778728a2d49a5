"""The README's settings table stays true: every setting documented, nothing that is not."""

from __future__ import annotations

import re
from pathlib import Path

from streams.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), flags=re.MULTILINE))
    assert documented == {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in README.read_text()
    assert "scripts/test.sh" in ci
