"""Re-make one election's Redis state (tallies, change log, sent outputs) from the Kafka log.

    election-rebuild                          # the election of ELECTION_ELECTION_ID
    python -m scripts.rebuild --election parl.2024-07-04

Reads declarations from its start to its end now and applies every message with the
workers' own Lua step, then records which results, snapshots and alerts are already on the
output topics so the publisher does not send them again. Run it with the workers stopped (a
running worker rebuilds by itself when it finds the state missing). Prints the messages read
and the seconds taken; exit 1 with a one-line reason when Kafka or Redis cannot be used.

On the audit topic (ELECTION_TOPIC_AUDIT) as `console:<user>`: the intent with the seats
tallied and the change sequence, before anything is wiped, then `done` with the messages read,
the seconds taken and the seats and sequence rebuilt, or `failed` with why. With Kafka
unreachable nothing is rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from schemas.audit import AuditAction
from scripts.console_audit import console_audit, console_person, not_recorded
from streams.collector import settle_the_heap
from streams.connections import redis_from_settings
from streams.pipeline.audit import AuditNotWritten
from streams.rules.reference import ReferenceDataError, load_register
from streams.settings import Settings, get_settings
from streams.store.rebuild import RebuildReport, rebuild
from streams.store.tally_store import TallyStore


async def rebuild_election(settings: Settings) -> RebuildReport:
    """Rebuild the state of `settings.election_id` under `settings.redis_key_prefix`, on the
    audit trail as the admin endpoint's rebuild is."""
    register = load_register(settings.data_dir)
    if register.election_id != settings.election_id:
        raise ReferenceDataError(
            f"--election is {settings.election_id} but {settings.data_dir} holds "
            f"{register.election_id}"
        )
    settle_the_heap(settings.gc_young_threshold)
    redis = redis_from_settings(settings)
    try:
        store = TallyStore(redis, settings.election_id, settings.redis_key_prefix, register)
        before = await store.tallied()
        with console_audit(settings) as trail:
            async with trail.acting(
                AuditAction.REBUILD, console_person(), settings.election_id, before
            ) as done:
                report = await rebuild(store, settings, register)
                done.after = {
                    "messages": report.messages,
                    "seconds": round(report.seconds, 3),
                    **await store.tallied(),
                }
    finally:
        await redis.aclose()
    return report


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="election-rebuild", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--election", default=settings.election_id, help="default: ELECTION_ELECTION_ID"
    )
    parser.add_argument(
        "--redis-url", default=settings.redis_url, help="default: ELECTION_REDIS_URL"
    )
    parser.add_argument(
        "--key-prefix", default=settings.redis_key_prefix, help="default: ELECTION_REDIS_KEY_PREFIX"
    )
    parser.add_argument(
        "--bootstrap",
        default=settings.kafka_bootstrap_servers,
        help="default: ELECTION_KAFKA_BOOTSTRAP_SERVERS",
    )
    args = parser.parse_args(argv)
    chosen = settings.model_copy(
        update={
            "election_id": args.election,
            "redis_url": args.redis_url,
            "redis_key_prefix": args.key_prefix,
            "kafka_bootstrap_servers": args.bootstrap,
        }
    )
    try:
        report = asyncio.run(rebuild_election(chosen))
    except AuditNotWritten as error:  # a RuntimeError, so before the others
        print(f"election-rebuild: {not_recorded(error)}", file=sys.stderr)
        return 1
    except (RedisError, KafkaError, ReferenceDataError, RuntimeError, OSError) as error:
        print(f"election-rebuild: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(report.summary(chosen.election_id, chosen.topic_declarations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
