"""Where an election's Redis keys live: one namespace per election, one hash slot per namespace."""

from __future__ import annotations


def election_namespace(key_prefix: str, election_id: str) -> str:
    """The start of every Redis key of one election: `{key_prefix}election:{<election_id>}:`.

    The braces are literal: a Redis Cluster hashes only the text between the first `{` and
    the next `}`, so every key of an election lands in one hash slot and each Lua step and
    pipeline of the election can run on one node. Whatever the prefix holds, that first
    `{...}` lies inside this constant start, so the keys of one election always share a slot.
    """
    return f"{key_prefix}election:{{{election_id}}}:"
