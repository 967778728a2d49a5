"""Every Redis key of an election, named here once: its namespace and the names after it."""

from __future__ import annotations

import re
from dataclasses import dataclass


def election_namespace(key_prefix: str, election_id: str) -> str:
    """The start of every Redis key of one election: `{key_prefix}election:{<election_id>}:`.

    The braces are literal: a Redis Cluster hashes only the text between the first `{` and
    the next `}`, so every key of an election lands in one hash slot and each Lua step and
    pipeline of the election can run on one node. Whatever the prefix holds, that first
    `{...}` lies inside this constant start, so the keys of one election always share a slot.
    """
    return f"{key_prefix}election:{{{election_id}}}:"


def people_key(key_prefix: str) -> str:
    """The desk's people (streams.store.desk): a hash name -> JSON of role, token digest and
    when and by whom it was given. Outside every election's namespace: a reset or rebuild of
    an election never locks its editors out, and one roster serves rehearsals and the night."""
    return f"{key_prefix}desk:people"


def namespace_pattern(namespace: str) -> str:
    """The SCAN pattern of every key in `namespace`: glob characters in it match themselves."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", namespace) + "*"


# The names below follow the namespace. The strings are the data layout of Redis as it stands
# on a night: renaming one orphans what is already stored under it.

# The tallies (streams.store.tally_store), written by the apply step (lua/tally_apply.lua).
# + ONS id: hash revision, kind, content_hash, contribution, result, recount, applied_offset
# (of the source that counts, named in `source`), `sources` (every source that reported the
# seat, comma-separated), and per source `rev:`, `hash:` and `view:` + its name.
SEAT = "seat:"
SEATS = "seats"  # set of ONS ids with a seat hash, so reading every seat needs no SCAN
TOTALS = "totals"  # hash of flat integer counters (none at 0), and meta:sequence
OFFSETS = "offsets"  # hash topic:partition -> last offset applied
CLOCKS = "clocks"  # hash topic:partition -> event key (text) of the last timed message applied
AS_OF = "as-of"  # string: the latest declaration time applied, ms since the epoch
CHANGES = "changes"  # stream, entry id {sequence}-0, read by the publisher
EXIT_POLL = "exit-poll"  # string: the election's exit poll JSON, once
COUNTERS = "counters"  # hash stage:outcome -> count

# The outbox and its publisher (streams.store.outbox).
OUTBOX = "outbox"  # stream, entry id {outbox sequence}-0: output_id, topic, key, value
OUTBOX_SEQ = "outbox:seq"  # string: the last outbox sequence given out
ANNOUNCED_IDS = "outbox:ids"  # set: every output id ever queued (or found already on Kafka)
EPOCH = "outbox:epoch"  # string: a random id per outbox life, new after a reset
ANNOUNCED = "publisher:announced"  # string: every change up to this sequence is queued
MOMENTS = "publisher:moments"  # hash: national moment -> the id it was told under, and where
PUBLISHED = "publisher:published"  # string: every outbox entry up to this sequence is on Kafka
PUBLISHER_LOCK = "publisher:lock"  # lease (streams.store.lease): the one publishing worker

# Where the state came from (streams.store.rebuild).
STATE_MARKER = "state:origin"  # JSON: how this state began (fresh, rebuilt, reset) and when
REBUILD_LOCK = "state:rebuild-lock"  # lease: one rebuilder at a time across workers

# Feed ingests (streams.ingest.progress), per source (pa:rehearsal): + source + FEED_FILES, a
# hash file name -> what became of it; + source + FEED_SEATS, a hash PA seat number -> JSON of
# the revision taken and whether a result was among them.
FEED = "feed:"
FEED_FILES = ":files"
FEED_SEATS = ":seats"

# Hand corrections (streams.store.desk): + ONS id, a hash revision -> the editor's name, for
# every revision of the seat the desk has sent or is sending, so two corrections never go
# out under one revision.
DESK_REVISIONS = "desk:revisions:"

# Alerts held on the desk (streams.store.holds), written by the outbox's announce step and the
# desk's decisions (lua/outbox_announce.lua, lua/desk_decide.lua). A rebuild keeps them
# (DESK_KEPT): they are the desk's record, not a function of the declarations log.
DESK_HELD = "desk:held"  # hash alert id -> "<condition>\n<held ms>\n<release after ms>\n<JSON>"
DESK_DECIDED = "desk:decided"  # hash alert id -> JSON of the decision on it, once
DESK_SENT = "desk:sent"  # hash alert id -> the alert as the desk sent it (edited or not)
DESK_KILLED = "desk:killed"  # set of alert ids killed: what amends them is held too
DESK_ACTIONS = "desk:actions"  # stream of decision JSON, the latest thousand or so
DESK_CALLS = "desk:calls-held"  # hash ONS id -> JSON of who holds its call, when, why
DESK_VERSION = "desk:version"  # string: counts every change of the desk, for its live view
DESK_RELEASER_LOCK = "desk:releaser-lock"  # lease: the one worker sending holds whose time ran out
DESK_KEPT = (
    DESK_HELD,
    DESK_DECIDED,
    DESK_SENT,
    DESK_KILLED,
    DESK_ACTIONS,
    DESK_CALLS,
    DESK_VERSION,
)

# Webhook delivery (streams.pipeline.webhooks).
WEBHOOKS_LOCK = "webhooks:lock"  # lease: the one worker delivering to every subscriber
WEBHOOK_SUBSCRIBERS = "webhooks:subscribers"  # hash subscriber id -> URL, for operators
WEBHOOK_SUBSCRIBER = "webhooks:"  # + subscriber id + ":" + one of SubscriberKeys' names


@dataclass(frozen=True)
class SubscriberKeys:
    """One webhook subscriber's keys, under its id (a hash: the URL itself may hold secrets)."""

    cursor: str  # string: the outbox sequence every entry up to which is settled
    delivered: str  # set: alert ids the subscriber acknowledged with a 2xx
    dead: str  # list: JSON of each alert given up on, with the last reason
    withheld: str  # set: a rehearsal's alert ids never sent, as it takes no rehearsals

    @classmethod
    def of(cls, namespace: str, subscriber_id: str) -> SubscriberKeys:
        base = f"{namespace}{WEBHOOK_SUBSCRIBER}{subscriber_id}:"
        return cls(
            cursor=base + "cursor",
            delivered=base + "delivered",
            dead=base + "dead",
            withheld=base + "withheld",
        )
