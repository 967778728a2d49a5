"""What a feed's ingest has done, in Redis: every file handled and what each PA seat has taken.

Both are written in one transaction after the poll's messages are on Kafka, so a restart,
even after kill -9, starts from a state that has published at least what it records.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import redis

from streams.feeds.pa.revisions import SeatTaken
from streams.ingest.drop_folder import name_bytes, name_text
from streams.store.keys import FEED, FEED_FILES, FEED_SEATS, election_namespace


class IngestProgress:
    def __init__(self, client: redis.Redis, key_prefix: str, election_id: str, source: str) -> None:
        base = f"{election_namespace(key_prefix, election_id)}{FEED}{source}"
        self._client = client
        self.files_key = base + FEED_FILES
        self.seats_key = base + FEED_SEATS

    def handled_files(self) -> set[str]:
        # Bytes from a client without decode_responses, which a name not in UTF-8 needs.
        names = self._client.hkeys(self.files_key)
        return {name_text(name) if isinstance(name, bytes) else name for name in names}

    def seats_taken(self) -> dict[int, SeatTaken]:
        return {
            int(number): SeatTaken(**orjson.loads(taken))
            for number, taken in self._client.hgetall(self.seats_key).items()
        }

    def record(self, files: Mapping[str, str], seats: Mapping[int, SeatTaken]) -> None:
        """Files handled (name -> what became of it) and the seats they moved, all at once."""
        pipe = self._client.pipeline(transaction=True)
        if files:
            pipe.hset(
                self.files_key,
                mapping={name_bytes(name): outcome for name, outcome in files.items()},
            )
        if seats:
            pipe.hset(
                self.seats_key,
                mapping={
                    str(number): orjson.dumps(
                        {"revision": taken.revision, "has_result": taken.has_result}
                    )
                    for number, taken in seats.items()
                },
            )
        pipe.execute()
