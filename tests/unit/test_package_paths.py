"""Where the settings find files: inside the package, so a wheel installed anywhere works."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.services import KAFKA_FILES
from streams import settings as settings_module
from streams.rules.reference import load_register
from streams.settings import CHECKOUT, DEFAULT_DATA_DIR, PACKAGE_DIR, Settings


@pytest.fixture
def no_run_dir_setting(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("RUN_DIR", f"{settings_module.ENV_PREFIX}RUN_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_2024_data_and_the_broker_files_ship_inside_the_packages() -> None:
    assert DEFAULT_DATA_DIR.is_relative_to(PACKAGE_DIR)
    assert load_register(DEFAULT_DATA_DIR).total_seats == 650
    assert (DEFAULT_DATA_DIR / "README.md").is_file()  # provenance and licences go with it
    assert KAFKA_FILES.parent == Path(settings_module.__file__).resolve().parents[1] / "scripts"
    assert Settings().data_dir == DEFAULT_DATA_DIR


def test_a_checkout_has_one_run_folder_wherever_a_command_starts(
    no_run_dir_setting: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert CHECKOUT is not None  # the tests run from one
    no_run_dir_setting.chdir(tmp_path)
    assert Settings().run_dir == CHECKOUT / ".run"


def test_an_installed_package_runs_in_the_current_folder(
    no_run_dir_setting: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_run_dir_setting.setattr(settings_module, "CHECKOUT", None)
    no_run_dir_setting.chdir(tmp_path)
    assert Settings().run_dir == tmp_path / ".run"
