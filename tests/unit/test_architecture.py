"""Layering: no import cycle, rules and store kept off Faust, imports with no side effect."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "schemas", "scripts")

# What each layer must not import, directly or by a function-level import, by prefix.
LAYERS: dict[str, tuple[str, ...]] = {
    # The rules are pure: tested and reused without Kafka, Redis, Faust or the environment.
    "streams.rules": (
        "streams.store",
        "streams.pipeline",
        "streams.web",
        "streams.settings",
        "streams.connections",
        "faust",
        "redis",
        "aiokafka",
    ),
    # Redis state is rebuilt and reset by scripts that run no worker.
    "streams.store": ("streams.pipeline", "streams.web", "faust"),
}


@dataclass(frozen=True)
class Import:
    """`module` imports `target` (the full dotted name it loads) at `line`."""

    module: str
    target: str
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    """Every module of the project's own packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve_relative(module: str, level: int, name: str | None) -> str:
    is_package = project_modules()[module].name == "__init__.py"
    base = module.split(".")
    # `from . import x` in a package's __init__ means the package itself.
    base = base if is_package else base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    # ast.walk reaches imports inside functions, methods and `if TYPE_CHECKING:` blocks too.
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                # `from package import name` loads package.name when that is a module.
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in project_modules() else base
                yield Import(module, target, node.lineno)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(
        found for module, path in project_modules().items() for found in _imports_of(module, path)
    )


def _owner(target: str) -> str | None:
    """The project module an import loads: the longest dotted prefix that is one."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in project_modules():
            return name
    return None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in project_modules()}
    for found in all_imports():
        owner = _owner(found.target)
        if owner is not None:
            graph[found.module].add(owner)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle from each strongly connected component that has one (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles: list[list[str]] = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) > 1 or start in graph[start]:
            cycles.append(_path_back(graph, start, members))
    return cycles


def _path_back(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A shortest path from `start` back to itself within one component."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for successor in sorted(graph[node] & members):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is in a cycle with no path back")


def _lines(imports: Iterable[Import]) -> str:
    return "\n".join(
        f"  {project_modules()[i.module].relative_to(ROOT)}:{i.line}: {i.target}" for i in imports
    )


def test_the_graph_sees_every_package_and_the_imports_inside_functions() -> None:
    graph = import_graph()
    assert {"streams.rules.validation", "streams.pipeline.app", "schemas.generate"} <= set(graph)
    assert "streams.pipeline.app" in graph["streams.worker"]
    # services.py imports redis inside a function, where a module-level scan would miss it.
    assert any(i.module == "scripts.services" and i.target == "redis" for i in all_imports())


def test_the_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e"]]


def test_there_is_no_import_cycle() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def _forbidden(layer: str) -> list[Import]:
    banned = LAYERS[layer]
    return [
        found
        for found in all_imports()
        if (found.module == layer or found.module.startswith(layer + "."))
        and any(found.target == b or found.target.startswith(b + ".") for b in banned)
    ]


def test_the_rules_import_no_store_pipeline_web_settings_or_clients() -> None:
    forbidden = _forbidden("streams.rules")
    assert not forbidden, "streams.rules imports what it must not:\n" + _lines(forbidden)


def test_the_store_imports_nothing_of_the_faust_side() -> None:
    forbidden = _forbidden("streams.store")
    assert not forbidden, "streams.store imports what it must not:\n" + _lines(forbidden)


# Run in a fresh interpreter: what importing does, before any test has imported anything.
IMPORT_PROBE = """
import gc, importlib, json, os, pkgutil, sys, traceback

faust_imported_by = []


class Watch:
    # Names the project module whose import statement loads faust first, for the report.
    def find_spec(self, name, path=None, target=None):
        if name == "faust" and not faust_imported_by:
            stack = traceback.extract_stack()
            faust_imported_by.extend(f.filename for f in stack if "<frozen" not in f.filename)
        return None


sys.meta_path.insert(0, Watch())
import streams.rules
import streams.store.tally_store

for info in pkgutil.walk_packages(streams.rules.__path__, "streams.rules."):
    importlib.import_module(info.name)
faust_after_rules_and_store = "faust" in sys.modules
blamed = list(faust_imported_by)

import streams.pipeline.app
import streams.rules.validation
import streams.store.tally_store
import streams.web.api

import faust

print(json.dumps({
    "faust_after_rules_and_store": faust_after_rules_and_store,
    "faust_imported_by": blamed,
    "faust_apps": sum(isinstance(o, faust.App) for o in gc.get_objects()),
    "cwd": sorted(os.listdir(".")),
}))
"""


def test_importing_builds_no_app_and_writes_no_file(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run_dir = tmp_path / "run"  # must still not exist afterwards
    env = {k: v for k, v in os.environ.items() if k != "APP_DATADIR"}
    env |= {
        "ELECTION_RUN_DIR": str(run_dir),
        "PYTHONPATH": str(ROOT),
        # The probe itself must not write either (bytecode next to the sources).
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    sources = tuple(str(ROOT / package) + os.sep for package in PACKAGES)
    own = [name for name in facts["faust_imported_by"] if name.startswith(sources)]
    assert not facts["faust_after_rules_and_store"], f"faust imported via {own}"
    assert facts["faust_apps"] == 0, "importing built a faust.App"
    assert facts["cwd"] == [], "importing wrote to the working directory"
    assert not run_dir.exists(), "importing created ELECTION_RUN_DIR"
