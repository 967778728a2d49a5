"""Standard Webhooks signing, checked against the spec's vector and its official library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from streams.rules.webhook_signing import (
    WebhookSecretError,
    legacy_signature_headers,
    secret_key,
    signature_headers,
)


def new_secret() -> str:
    """A secret as an operator makes one (README)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


BODY = b'{"alert_id":"gain:E14001290:Lab","headline":"Labour gain Hendon","sequence":7}'


def test_the_signature_is_the_spec_s_own_test_vector() -> None:
    # The vector of the spec's reference libraries: id, timestamp and body as they give them.
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = signature_headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}', [key]
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_during_a_rotation_a_subscriber_with_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers(
        "gain:E14001290:Lab", int(time.time()), BODY, [secret_key(old), secret_key(new)]
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers)["headline"] == "Labour gain Hendon"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


def test_the_alert_id_and_the_body_are_both_signed() -> None:
    secret = new_secret()
    headers = signature_headers("gain:E14001290:Lab", int(time.time()), BODY, [secret_key(secret)])
    hook = Webhook(secret)
    # Unlike the old scheme, an id swapped onto a genuine body is refused too.
    with pytest.raises(WebhookVerificationError):
        hook.verify(BODY, {**headers, "webhook-id": "gain:E14001290:Con"})
    with pytest.raises(WebhookVerificationError):
        hook.verify(BODY.replace(b"Labour", b"Reform"), headers)


def test_a_request_replayed_later_is_refused_by_the_library() -> None:
    secret = new_secret()
    stale = signature_headers("a1", int(time.time()) - 301, BODY, [secret_key(secret)])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, stale)


def test_without_keys_the_id_and_timestamp_go_unsigned() -> None:
    assert signature_headers("a1", 1720137600, BODY, []) == {
        "webhook-id": "a1",
        "webhook-timestamp": "1720137600",
    }


def test_a_key_is_24_to_64_bytes_of_base64_after_the_prefix() -> None:
    key = secrets.token_bytes(32)
    encoded = base64.b64encode(key).decode()
    assert secret_key("whsec_" + encoded) == key
    assert secret_key("whsec_" + encoded.rstrip("=")) == key  # unpadded, as the library takes
    assert len(secret_key("whsec_" + base64.b64encode(bytes(24)).decode())) == 24
    assert len(secret_key("whsec_" + base64.b64encode(bytes(64)).decode())) == 64


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (base64.b64encode(bytes(32)).decode(), "does not start with whsec_"),
        ("whsec_" + "not base64 at all!!", "is not base64"),
        ("whsec_" + base64.b64encode(bytes(32)).decode()[:-3] + "*==", "is not base64"),
        ("whsec_" + base64.b64encode(bytes(16)).decode(), "a 16-byte key, not 24 to 64"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "a 65-byte key, not 24 to 64"),
        ("whsec_", "a 0-byte key"),
    ],
)
def test_a_malformed_secret_is_refused_without_quoting_it(secret: str, reason: str) -> None:
    with pytest.raises(WebhookSecretError, match=reason) as refused:
        secret_key(secret)
    quoted = secret.removeprefix("whsec_")
    assert not quoted or quoted not in str(refused.value)


# The deprecated scheme, unchanged for its last release:
# `printf '1720137600.{"alert_id":"a1","sequence":7}' | openssl dgst -sha256 -hmac whsec-test`
LEGACY_VECTOR = "59c446994cbad013f602e2627791a4c2547002170a8f75982b7d3126bd393683"


def test_the_legacy_headers_are_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"alert_id":"a1","sequence":7}'
    headers = legacy_signature_headers("whsec-test", 1720137600, body)
    by_hand = hmac.new(b"whsec-test", b"1720137600." + body, hashlib.sha256).hexdigest()
    assert by_hand == LEGACY_VECTOR
    assert headers == {
        "X-Signature-Timestamp": "1720137600",
        "X-Signature-256": "sha256=" + LEGACY_VECTOR,
    }
