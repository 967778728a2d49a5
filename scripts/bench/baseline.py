"""The benchmark's baseline: the plain consumer loop a user would write instead of the pipeline.

    python -m scripts.bench.baseline --topic T --redis-url URL --namespace NS --expect N

kafka-python's consumer loop, the same pydantic model per message, and one Redis call per
field: the seat's fields, then each party's votes and the winner's seat, with the previous
revision's figures taken off first. It counts processed messages in `{NS}processed` and
exits after `--expect` messages, so the benchmark can time it like the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import redis
from kafka import KafkaConsumer, TopicPartition

from schemas.declaration import Declaration

# Its own key layout, not the pipeline's (streams.store.keys): the loop a user would write.
# These two, under the namespace, are how the benchmark (throughput.py) times it.
READY = "ready"  # string: set once the consumer is assigned, so the benchmark's clock starts
DONE = "done"  # string: the Unix time the last expected message was processed


def run(topic: str, bootstrap: str, redis_url: str, ns: str, expect: int) -> int:
    client = redis.Redis.from_url(redis_url)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    client.set(ns + READY, 1)  # the benchmark starts producing (and its clock) now
    processed = 0
    try:
        for record in consumer:
            declaration = Declaration.model_validate_json(record.value)
            seat = f"{ns}seat:{declaration.constituency_id}"
            votes_key = seat + ":votes"
            current = client.hget(seat, "revision")
            if current is None or int(current) < declaration.revision:
                old_votes: Any = client.hgetall(votes_key)
                for party, votes in old_votes.items():
                    client.hincrby(f"{ns}totals", f"party:{party.decode()}:votes", -int(votes))
                old_winner: Any = client.hget(seat, "winning_party")
                if old_winner is not None:
                    client.hincrby(f"{ns}totals", f"party:{old_winner.decode()}:seats", -1)
                winner = declaration.winner
                client.hset(seat, "revision", declaration.revision)
                client.hset(seat, "kind", declaration.kind.value)
                client.hset(seat, "declared_at", declaration.declared_at.isoformat())
                client.hset(seat, "electorate", declaration.electorate or 0)
                client.hset(seat, "valid_votes", declaration.valid_votes or 0)
                client.hset(seat, "rejected_ballots", declaration.rejected_ballots or 0)
                for candidate in declaration.candidates:
                    party = candidate.party.abbreviation
                    client.hset(votes_key, party, candidate.votes or 0)
                    client.hincrby(f"{ns}totals", f"party:{party}:votes", candidate.votes or 0)
                if winner is not None:
                    client.hset(seat, "winning_party", winner.party.abbreviation)
                    client.hincrby(f"{ns}totals", f"party:{winner.party.abbreviation}:seats", 1)
            processed += 1
            client.incr(f"{ns}processed")
            if processed >= expect:
                client.set(ns + DONE, repr(time.time()))
                break
    finally:
        consumer.close()
        client.close()
    return processed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.baseline", description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args(argv)
    run(args.topic, args.bootstrap_servers, args.redis_url, args.namespace, args.expect)
    return 0


if __name__ == "__main__":
    sys.exit(main())
