"""The one place that turns the settings into Kafka and Redis clients and their options (TLS, SASL,
AUTH, Sentinel)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from streams.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
# A Sentinel that stops answering (its machine gone) must not hold up finding the primary:
# the next one on the list is asked instead.
SENTINEL_SOCKET_TIMEOUT_S = 1.0


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


@dataclass(frozen=True)
class SentinelURL:
    """`redis+sentinel://[:password@]host:port,host:port,.../service[/db]`: where the Sentinels
    listen, the name they monitor the primary under, the database and the data nodes' password."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None


def sentinel_url(url: str) -> SentinelURL | None:
    """The Sentinel address in `url`, or None for a plain redis:// or rediss:// URL."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels: list[tuple[str, int]] = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        if not host or (port and not port.isdigit()):
            raise ConnectionSettingsError(
                f"{SENTINEL_SCHEME} URL: bad Sentinel address {address!r}"
            )
        sentinels.append((host, int(port or SENTINEL_PORT)))
    path = [part for part in parts.path.split("/") if part]
    if not sentinels or not path or len(path) > 2 or not (len(path) == 1 or path[1].isdigit()):
        raise ConnectionSettingsError(
            f"a {SENTINEL_SCHEME} URL is {SENTINEL_SCHEME}://host:port,host:port/service[/db]"
        )
    password = unquote(userinfo.partition(":")[2]) if userinfo else ""
    return SentinelURL(sentinels, path[0], int(path[1]) if len(path) == 2 else 0, password or None)


def _sentinel_options(
    address: SentinelURL, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data nodes' options (a password in the URL wins, as for redis://), and the
    Sentinels' own: the same socket timeouts, or a short one."""
    data_options = {**options, "db": address.db}
    if address.password is not None:
        data_options["password"] = address.password
    asking = {
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S,
        **{key: value for key, value in options.items() if key.startswith("socket_")},
    }
    return data_options, asking


def redis_from_settings(settings: Settings, url: str | None = None, **kwargs: Any) -> Redis:
    """An asyncio Redis client for ELECTION_REDIS_URL (or `url`) with the password and TLS
    settings; for a redis+sentinel:// URL, one that asks the Sentinels for the primary at
    every (re)connection, so a failover costs the commands in flight, which raise
    ConnectionError (retried where the night's writes are made)."""
    url = url or settings.redis_url
    options = {**_redis_options(settings, url), **kwargs}
    address = sentinel_url(url)
    if address is None:
        return Redis.from_url(url, **options)
    data_options, asking = _sentinel_options(address, options)
    return Sentinel(address.sentinels, sentinel_kwargs=asking).master_for(
        address.service, **data_options
    )


def sync_redis_from_settings(
    settings: Settings, url: str | None = None, **kwargs: Any
) -> redis.Redis:
    """The blocking client, for command-line tools and readiness checks."""
    url = url or settings.redis_url
    options = {**_redis_options(settings, url), **kwargs}
    address = sentinel_url(url)
    if address is None:
        return redis.Redis.from_url(url, **options)
    data_options, asking = _sentinel_options(address, options)
    return redis.sentinel.Sentinel(address.sentinels, sentinel_kwargs=asking).master_for(
        address.service, **data_options
    )


def sync_sentinels(settings: Settings, url: str, **kwargs: Any) -> redis.sentinel.Sentinel:
    """The Sentinels of a redis+sentinel:// `url` themselves, to ask them about the nodes."""
    address = sentinel_url(url)
    if address is None:
        raise ConnectionSettingsError(f"not a {SENTINEL_SCHEME} URL: {url}")
    data_options, asking = _sentinel_options(address, {**_redis_options(settings, url), **kwargs})
    return redis.sentinel.Sentinel(address.sentinels, sentinel_kwargs=asking, **data_options)
