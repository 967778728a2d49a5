"""Delete one election's Redis keys (tallies, change log, outbox); other elections' stay."""

from __future__ import annotations

import argparse
import asyncio

from streams.connections import redis_from_settings
from streams.settings import get_settings
from streams.store.keys import election_namespace
from streams.store.rebuild import reset_election
from streams.store.tally_store import TallyStore


async def reset(redis_url: str, election_id: str, key_prefix: str = "") -> int:
    """Remove `{key_prefix}election:{election_id}:*`; returns how many keys were removed."""
    redis = redis_from_settings(get_settings(), url=redis_url)
    try:
        return await reset_election(TallyStore(redis, election_id, key_prefix))
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--election", required=True, help="election id, e.g. parl.2024-07-04")
    parser.add_argument(
        "--redis-url", default=settings.redis_url, help="default: ELECTION_REDIS_URL"
    )
    parser.add_argument(
        "--key-prefix", default=settings.redis_key_prefix, help="default: ELECTION_REDIS_KEY_PREFIX"
    )
    args = parser.parse_args(argv)
    removed = asyncio.run(reset(args.redis_url, args.election, args.key_prefix))
    print(f"removed {removed} keys of {election_namespace(args.key_prefix, args.election)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
