"""Delete one election's Redis keys (tallies, change log, outbox); other elections' stay.

    election-reset --election parl.2024-07-04

On the audit topic (ELECTION_TOPIC_AUDIT) as `console:<user>`: the intent with the seats
tallied and the change sequence, before any key is deleted, then `done` with how many keys
were removed, or `failed` with why. With Kafka unreachable nothing is deleted (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from redis.exceptions import RedisError

from schemas.audit import AuditAction
from scripts.console_audit import console_audit, console_person, not_recorded
from streams.connections import redis_from_settings
from streams.pipeline.audit import AuditNotWritten
from streams.settings import Settings, get_settings
from streams.store.keys import election_namespace
from streams.store.rebuild import reset_election
from streams.store.tally_store import TallyStore


async def reset(redis_url: str, election_id: str, key_prefix: str = "") -> int:
    """Remove `{key_prefix}election:{election_id}:*`; returns how many keys were removed.
    Not on the audit trail: election-night's fresh start of its own rehearsal."""
    redis = redis_from_settings(get_settings(), url=redis_url)
    try:
        return await reset_election(TallyStore(redis, election_id, key_prefix))
    finally:
        await redis.aclose()


async def reset_on_record(settings: Settings) -> int:
    """Reset `settings.election_id` under `settings.redis_key_prefix`, on the audit trail as
    the admin endpoint's reset is; returns how many keys were removed."""
    redis = redis_from_settings(settings)
    try:
        store = TallyStore(redis, settings.election_id, settings.redis_key_prefix)
        before = await store.tallied()
        with console_audit(settings) as trail:
            async with trail.acting(
                AuditAction.RESET, console_person(), settings.election_id, before
            ) as done:
                removed = await reset_election(store)
                done.after = {"removed_keys": removed}
    finally:
        await redis.aclose()
    return removed


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="election-reset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--election", required=True, help="election id, e.g. parl.2024-07-04")
    parser.add_argument(
        "--redis-url", default=settings.redis_url, help="default: ELECTION_REDIS_URL"
    )
    parser.add_argument(
        "--key-prefix", default=settings.redis_key_prefix, help="default: ELECTION_REDIS_KEY_PREFIX"
    )
    args = parser.parse_args(argv)
    chosen = settings.model_copy(
        update={
            "election_id": args.election,
            "redis_url": args.redis_url,
            "redis_key_prefix": args.key_prefix,
        }
    )
    try:
        removed = asyncio.run(reset_on_record(chosen))
    except AuditNotWritten as error:
        print(f"election-reset: {not_recorded(error)}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as error:
        print(f"election-reset: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"removed {removed} keys of {election_namespace(args.key_prefix, args.election)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
