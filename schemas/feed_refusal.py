"""A file a feed's ingest refused, as published to the dead-letter topic with its first bytes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from schemas.common import Message, Rehearsal, SchemaVersion


class FeedRefusal(Message):
    schema_version: SchemaVersion = "1"
    message_type: Literal["feed_refusal"] = "feed_refusal"
    source: str = Field(description="The feed the file came from, e.g. pa:rehearsal")
    file_name: str = Field(description="The file's name in the drop folder (its first 512 bytes)")
    reason: str = Field(description="Machine reason, e.g. xml_dtd_forbidden or pa_stale_revision")
    detail: str = Field(description="Readable reason, for the person on the desk")
    original_b64: str = Field(description="The file's first 4 KiB, base64")
    size: int = Field(description="The file's size in bytes")
    sha256: str = Field(
        description="SHA-256 (hex) of the bytes read: the whole file unless over the size cap"
    )
    refused_at: dt.datetime
    election_id: str = Field(description="The election the ingest was feeding")
    rehearsal: Rehearsal
