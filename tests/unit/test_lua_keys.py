"""Every Lua script reaches Redis only through its KEYS, and every script file is in use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.store.lua_scripts import lua_script

STREAMS = Path(__file__).resolve().parents[2] / "streams"
LUA_DIR = STREAMS / "store" / "lua"
LUA_FILES = sorted(LUA_DIR.glob("*.lua"))

# Commands that touch no key at all: the server's clock.
KEYLESS = {"'TIME'"}
_CALL = re.compile(r"\bredis\.p?call\s*\(")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _without_comments(source: str) -> str:
    """The source with `--` comments blanked out (quotes respected, line breaks kept)."""
    kept: list[str] = []
    quote: str | None = None
    at = 0
    while at < len(source):
        char = source[at]
        if quote:
            kept.append(char)
            if char == "\\":
                kept.append(source[at + 1])
                at += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            kept.append(char)
        elif source.startswith("--", at):
            end = source.find("\n", at)
            at = len(source) if end < 0 else end
            continue
        else:
            kept.append(char)
        at += 1
    return "".join(kept)


def _split_top_level(text: str, end_at_newline: bool = False) -> tuple[list[str], int]:
    """Comma-separated expressions from the start of `text`, up to the bracket closing them
    (or the end of the statement's line); returns them and where they stopped."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for at, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth > 0:
            depth -= 1
        elif char in ")]}" or (char == "\n" and depth == 0 and end_at_newline):
            parts.append(text[start:at].strip())
            return parts, at
        elif char == "," and depth == 0:
            parts.append(text[start:at].strip())
            start = at + 1
    parts.append(text[start:].strip())
    return parts, len(text)


def _is_keys_index(expression: str) -> bool:
    """`KEYS[...]` and nothing else: one index into KEYS, whatever computes the index."""
    if not expression.startswith("KEYS[") or not expression.endswith("]"):
        return False
    _, stop = _split_top_level(expression[len("KEYS[") :])
    return stop == len(expression) - len("KEYS[") - 1


def _assigned(code: str, name: str) -> list[str]:
    """Every expression `name` is given, wherever: `local a, name = x, y`, `then name = z`,
    a for loop's `name = 1`. A parameter or loop variable of `in` is given none."""
    assignment = re.compile(
        rf"(?<![\w.])((?:[A-Za-z_]\w*[ \t]*,[ \t]*)*){name}"
        rf"(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*[ \t]*=(?!=)"
    )
    values: list[str] = []
    for match in assignment.finditer(code):
        position = match.group(1).count(",")
        given, _ = _split_top_level(code[match.end() :], end_at_newline=True)
        values.append(given[position] if position < len(given) else "")
    return values


def key_problems(source: str) -> list[str]:
    """Each redis.call/pcall whose key argument is not KEYS[...] or a local set only from it."""
    code = _without_comments(source)
    problems: list[str] = []
    for match in _CALL.finditer(code):
        arguments, _ = _split_top_level(code[match.end() :])
        if arguments[0] in KEYLESS:
            continue
        if len(arguments) < 2:
            problems.append(f"{match.group(0)}{', '.join(arguments)}): no key argument")
            continue
        command, key = arguments[0], arguments[1]
        if _is_keys_index(key):
            continue
        if _NAME.fullmatch(key) and all(map(_is_keys_index, _assigned(code, key) or [""])):
            continue
        problems.append(f"{command} on {key!r}: not a key passed in KEYS")
    return problems


def test_there_are_scripts() -> None:
    assert len(LUA_FILES) >= 5


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda path: path.name)
def test_a_script_touches_only_the_keys_it_is_given(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert _CALL.search(source), f"{path.name} calls no Redis command"
    assert key_problems(source) == []


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda path: path.name)
def test_every_script_is_loaded_by_the_code(path: Path) -> None:
    loaded_as = f'lua_script("{path.stem}")'
    users = [p for p in STREAMS.rglob("*.py") if loaded_as in p.read_text(encoding="utf-8")]
    assert users, f"no module under streams/ loads {path.name}"
    assert lua_script(path.stem).source == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "source",
    [
        "redis.call('GET', ns .. 'totals')",
        "redis.call('HSET', ARGV[1], 'a', 1)",
        "redis.pcall('DEL', 'outbox')",
        "local key = KEYS[1] .. ':x'\nredis.call('GET', key)",
        "local key = KEYS[1]\nkey = ARGV[1]\nredis.call('GET', key)",
        "local function f(key) return redis.call('GET', key) end",
        "local a, b = KEYS[1], ARGV[2]\nredis.call('SET', b, 1)",
        "local key = KEYS[1]\nif x then key = ARGV[1] end\nredis.call('GET', key)",
        "for key = 1, 3 do redis.call('GET', key) end",
        "redis.call('GET', KEYS[1] .. 'x')",
    ],
)
def test_a_key_built_or_named_inside_lua_is_found(source: str) -> None:
    assert key_problems(source)


@pytest.mark.parametrize(
    "source",
    [
        "redis.call('GET', KEYS[1])",
        "local a, b = KEYS[1], KEYS[2] -- b, ARGV[1]\nredis.call('SADD', b, ARGV[1])",
        "local seat = KEYS[tonumber(ARGV[i + 12])]\nredis.call('HMGET', seat,\n  'revision')",
        "redis.call('XADD', KEYS[3], seq .. '-0', 'seat', ARGV[1])",
    ],
)
def test_keys_passed_in_are_accepted(source: str) -> None:
    assert key_problems(source) == []
