"""Standard Webhooks signatures of alert POSTs: the secrets' keys and the headers they sign."""

# The spec (https://www.standardwebhooks.com/): `webhook-signature` holds `v1,<base64 of the
# HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, one per key, space-separated, so
# during a rotation a subscriber holding either the old secret or the new one verifies.

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence

from standardwebhooks import Webhook

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
# The spec's size of a key: shorter is guessable; longer than SHA-256's 64-byte block is
# hashed down by HMAC first, so it adds nothing.
KEY_BYTES = range(24, 65)

# The scheme before Standard Webhooks, sent only while the deprecated ELECTION_WEBHOOK_SECRET
# is set.
LEGACY_TIMESTAMP_HEADER = "X-Signature-Timestamp"
LEGACY_SIGNATURE_HEADER = "X-Signature-256"


class WebhookSecretError(ValueError):
    """A secret that is not `whsec_<base64>` of a 24 to 64 byte key; the message never quotes it."""


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret stands for."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(f"does not start with {SECRET_PREFIX}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Strict, unlike the library, which skips stray characters: a secret mangled in a
        # copy would otherwise sign with a key no subscriber holds.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise WebhookSecretError(f"is not base64 after {SECRET_PREFIX}") from None
    if len(key) not in KEY_BYTES:
        raise WebhookSecretError(
            f"holds a {len(key)}-byte key, not {KEY_BYTES.start} to {KEY_BYTES.stop - 1}"
        )
    return key


def signature_headers(
    message_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]
) -> dict[str, str]:
    """The spec's headers of one POST: id and timestamp always, a signature per key if any.

    `body` is UTF-8 JSON: the library signs text, and that text encodes back to these bytes.
    """
    headers = {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp)}
    if keys:
        signed_at = dt.datetime.fromtimestamp(timestamp, dt.UTC)
        text = body.decode()
        headers[SIGNATURE_HEADER] = " ".join(
            Webhook(key).sign(message_id, signed_at, text) for key in keys
        )
    return headers


def legacy_signature_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The old scheme's headers: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {LEGACY_TIMESTAMP_HEADER: str(timestamp), LEGACY_SIGNATURE_HEADER: "sha256=" + digest}
