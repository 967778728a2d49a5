"""The one place that turns the settings into Kafka and Redis client options (TLS, SASL, AUTH)."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import redis
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from redis.asyncio import Redis

from streams.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


class ConnectionSettingsError(ValueError):
    """The security settings contradict each other; the message says which and how."""


def _optional(path: object) -> str | None:
    return str(path) if path is not None else None


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context verifying the brokers (hostname included), or None without TLS."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=_optional(settings.kafka_ssl_cafile)
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile), keyfile=_optional(settings.kafka_ssl_keyfile)
        )
    return context


def _check_sasl(settings: Settings) -> None:
    if settings.kafka_security_protocol in SASL_PROTOCOLS and not settings.kafka_sasl_username:
        raise ConnectionSettingsError(
            f"ELECTION_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "ELECTION_KAFKA_SASL_USERNAME and ELECTION_KAFKA_SASL_PASSWORD"
        )


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments shared by aiokafka's and kafka-python's clients.

    Both libraries take the same names (security_protocol, sasl_mechanism,
    sasl_plain_username, sasl_plain_password, ssl_context), so producers, consumers and
    admin clients of either spread this dict next to bootstrap_servers.
    """
    _check_sasl(settings)
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """The Faust app's `broker_credentials` (its consumer, producer and topic creation)."""
    _check_sasl(settings)
    context = kafka_ssl_context(settings)
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        # With a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def _redis_options(settings: Settings, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    # A password in the URL wins (redis-py lets URL options override keyword arguments).
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if urlsplit(url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        if settings.redis_ssl_ca_file is not None:
            options["ssl_ca_certs"] = str(settings.redis_ssl_ca_file)
    return options


def redis_from_settings(settings: Settings, url: str | None = None, **kwargs: Any) -> Redis:
    """An asyncio Redis client for ELECTION_REDIS_URL (or `url`) with the password and TLS "
    "settings."""
    url = url or settings.redis_url
    return Redis.from_url(url, **{**_redis_options(settings, url), **kwargs})


def sync_redis_from_settings(
    settings: Settings, url: str | None = None, **kwargs: Any
) -> redis.Redis:
    """The blocking client, for command-line tools and readiness checks."""
    url = url or settings.redis_url
    return redis.Redis.from_url(url, **{**_redis_options(settings, url), **kwargs})
