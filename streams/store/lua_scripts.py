"""The store's Lua scripts: each read once per process from its file in streams/store/lua/."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class LuaScript:
    """A script's text and its SHA1, the name EVALSHA and SCRIPT LOAD know it by."""

    name: str
    source: str
    sha: str


@functools.cache
def lua_script(name: str) -> LuaScript:
    """The script of `lua/<name>.lua`, read from the package data on first use only."""
    source = (resources.files("streams.store") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())
