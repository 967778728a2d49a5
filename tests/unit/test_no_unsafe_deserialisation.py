"""Nothing from outside is deserialised by a format that can run code (pickle and friends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.pipeline.app import create_app
from streams.settings import Settings

app = create_app(Settings())

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("streams", "schemas", "scripts")
# Each pattern: a way to turn bytes into objects that may run code on the way.
UNSAFE = {
    "pickle": re.compile(r"\b(c?[Pp]ickle|dill|cloudpickle|jsonpickle|joblib)\b"),
    "marshal": re.compile(r"\bmarshal\b"),
    "shelve": re.compile(r"\bshelve\b"),
    "yaml without SafeLoader": re.compile(
        r"\byaml\.(unsafe_load|full_load|load_all|load)\((?![^)]*Safe)"
    ),
    "builtin eval/exec": re.compile(r"(?<![.\w])(eval|exec)\("),
    "faust pickle codec": re.compile(r"""serializer\s*=\s*["'](pickle|binary\|pickle)"""),
}


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))


def test_the_scan_sees_the_code() -> None:
    files = code_files()
    assert ROOT / "streams" / "rules" / "validation.py" in files and len(files) > 30


@pytest.mark.parametrize("what", sorted(UNSAFE))
def test_no_code_uses_an_unsafe_deserialiser(what: str) -> None:
    pattern = UNSAFE[what]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in code_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not found, f"{what}:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("import pickle", "pickle"),
        ("data = cPickle.loads(raw)", "pickle"),
        ("yaml.load(text)", "yaml without SafeLoader"),
        ("marshal.loads(raw)", "marshal"),
        ("value = eval(raw)", "builtin eval/exec"),
        ('app.topic("x", value_serializer="pickle")', "faust pickle codec"),
    ],
)
def test_the_patterns_catch_what_they_are_for(line: str, what: str) -> None:
    assert UNSAFE[what].search(line)


@pytest.mark.parametrize(
    "line",
    [
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.safe_load(text)",
        "await redis.eval(SCRIPT, 1, key)",  # a Lua script on the server, not Python's eval
        "orjson.loads(raw)",
    ],
)
def test_safe_uses_pass(line: str) -> None:
    assert not any(pattern.search(line) for pattern in UNSAFE.values())


def test_faust_hands_every_topic_over_as_raw_bytes() -> None:
    """Our pydantic models parse the bytes; Faust's codecs (pickle among them) never run."""

    assert app.conf.key_serializer == app.conf.value_serializer == "raw"
    for topic in app.night_topics.all:
        assert (topic.key_serializer or app.conf.key_serializer) == "raw", topic
        assert (topic.value_serializer or app.conf.value_serializer) == "raw", topic
    for agent in app.agents.values():
        channel = agent.channel
        assert getattr(channel, "key_serializer", None) in {None, "raw"}, agent
        assert getattr(channel, "value_serializer", None) in {None, "raw"}, agent
    # No tables, whose changelogs Faust would encode with a codec of its own.
    assert not list(app.tables.values())
    assert str(app.conf.store) == "memory:"
