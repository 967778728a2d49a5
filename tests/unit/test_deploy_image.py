"""deploy/Dockerfile, which no test here can build: the built wheel, pinned, run by no root."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def stages() -> list[list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction == "FROM":
            found.append([])
        found[-1].append((instruction, " ".join(arguments.split())))
    return found


def name_of(requirement: str) -> str:
    """A requirement's distribution name, normalised as PEP 503 compares names."""
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found is not None, requirement
    return re.sub(r"[-_.]+", "-", found[0]).lower()


def test_the_runtime_stage_installs_the_built_wheel_with_the_pins() -> None:
    build, run = stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build")
    assert ("RUN", "pip wheel --no-deps --wheel-dir /wheels .") in build
    assert run[0] == ("FROM", "python:3.11-slim")
    copies = [arguments for instruction, arguments in run if instruction == "COPY"]
    # No source tree in the image: only the pins and the wheel built in the first stage.
    assert copies == [
        "deploy/constraints.txt /tmp/constraints.txt",
        "--from=build /wheels /tmp/wheels",
    ]
    runs = [arguments for instruction, arguments in run if instruction == "RUN"]
    assert runs[0] == "pip install -r /tmp/constraints.txt"
    assert runs[1].startswith("pip install -c /tmp/constraints.txt /tmp/wheels/*.whl ")
    assert not any(re.search(r"\s(-e|--editable)\s", f" {command} ") for command in runs)


def test_it_runs_as_the_user_the_manifests_expect_in_a_folder_it_can_write() -> None:
    _, run = stages()
    assert "useradd --create-home --uid 10001 election" in " ".join(a for _, a in run)
    assert ("USER", "election") in run
    # ELECTION_RUN_DIR of an installed package is .run in the working folder: the user's home.
    assert ("WORKDIR", "/home/election") in run
    assert "runAsUser: 10001" in (DEPLOY / "k8s" / "workers.yaml").read_text()


def test_everything_the_image_copies_is_in_its_build_context() -> None:
    build, run = stages()
    sources = {
        source
        for instruction, arguments in build + run
        if instruction == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert sources == kept


def test_the_pins_cover_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (DEPLOY / "constraints.txt").read_text().splitlines()
    pinned = {name_of(line) for line in lines if "==" in line and not line.startswith("#")}
    missing = {name_of(requirement) for requirement in project["dependencies"]} - pinned
    assert not missing, f"not in deploy/constraints.txt (regenerate it, README): {missing}"
