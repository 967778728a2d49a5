"""Client options from the settings: Kafka SASL/TLS for every client library, Redis AUTH/TLS."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import SentinelConnectionPool

from scripts.services import ServiceError, render_properties, scram_credential
from streams.connections import (
    SENTINEL_SOCKET_TIMEOUT_S,
    ConnectionSettingsError,
    SentinelURL,
    faust_broker_credentials,
    kafka_client_options,
    redis_from_settings,
    sentinel_url,
    sync_redis_from_settings,
)
from streams.settings import Settings

SYSTEM_CAS = ssl.get_default_verify_paths().cafile


def sasl(protocol: str = "SASL_PLAINTEXT", **more: object) -> Settings:
    return Settings(
        kafka_security_protocol=protocol,  # type: ignore[arg-type]
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="desk",
        kafka_sasl_password=SecretStr("pa55"),
        **more,  # type: ignore[arg-type]
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert kafka_client_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(settings) is None


def test_sasl_plaintext_gives_both_libraries_and_faust_the_same_user() -> None:
    options = kafka_client_options(sasl())
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "desk",
        "sasl_plain_password": "pa55",
    }
    credentials = faust_broker_credentials(sasl())
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("desk", "pa55")


def test_sasl_ssl_verifies_the_broker_against_the_ca_file() -> None:
    settings = sasl("SASL_SSL", kafka_ssl_cafile=Path(SYSTEM_CAS))
    context = kafka_client_options(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None


def test_ssl_with_a_client_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=election-worker", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=cert,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert isinstance(faust_broker_credentials(settings), SSLCredentials)
    with pytest.raises(ssl.SSLError):  # a key that is not the certificate's is refused
        other = tmp_path / "other.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(other), "2048"], check=True, capture_output=True
        )
        kafka_client_options(settings.model_copy(update={"kafka_ssl_keyfile": other}))


def test_sasl_without_a_user_is_a_settings_error() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ConnectionSettingsError, match="ELECTION_KAFKA_SASL_USERNAME"):
        kafka_client_options(settings)
    with pytest.raises(ConnectionSettingsError):
        faust_broker_credentials(settings)


def test_secrets_stay_out_of_reprs_and_logs() -> None:
    settings = sasl(
        redis_password=SecretStr("r3dis"),
        admin_token=SecretStr("t0ken"),
        webhook_secret=SecretStr("h00k"),
    )
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("pa55", "r3dis", "t0ken", "h00k"):
        assert secret not in shown


def test_settings_read_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTION_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ELECTION_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ELECTION_KAFKA_SASL_PASSWORD", "from-env")
    monkeypatch.setenv("ELECTION_REDIS_PASSWORD", "redis-env")
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_password.get_secret_value() == "from-env"
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "redis-env"
    monkeypatch.setenv("ELECTION_KAFKA_SECURITY_PROTOCOL", "SASL_TLS")
    with pytest.raises(ValueError):
        Settings()


async def test_redis_password_and_tls_reach_the_connection_pool() -> None:
    settings = Settings(
        redis_url="rediss://cache.example.org:6380/0",
        redis_password=SecretStr("r3dis"),
        redis_ssl_ca_file=Path(SYSTEM_CAS),
    )
    client = redis_from_settings(settings)
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["password"] == "r3dis"
    assert pool.connection_kwargs["ssl_ca_certs"] == SYSTEM_CAS
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    await client.aclose()


def test_a_password_in_the_url_wins_and_plain_urls_get_no_tls_options() -> None:
    settings = Settings(
        redis_url="redis://:in-url@127.0.0.1:1/0",
        redis_password=SecretStr("setting"),
        redis_ssl_ca_file=Path(SYSTEM_CAS),
    )
    client = sync_redis_from_settings(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "in-url"
    assert "ssl_ca_certs" not in kwargs
    client.close()


def test_the_local_broker_gets_a_scram_listener_only_when_asked(tmp_path: Path) -> None:
    plain = render_properties(Settings(kafka_sasl_port=0), tmp_path)
    assert "SASL_PLAINTEXT://" not in plain and "sasl.enabled.mechanisms" not in plain
    settings = sasl(kafka_sasl_port=29094, kafka_port=29092)
    props = dict(
        line.split("=", 1)
        for line in render_properties(settings, tmp_path).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"].endswith(",SASL_PLAINTEXT://127.0.0.1:29094")
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:29092,SASL_PLAINTEXT://127.0.0.1:29094"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    assert (
        "ScramLoginModule" in props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    )
    assert scram_credential(settings) == 'SCRAM-SHA-512=[name="desk",password="pa55"]'


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"kafka_sasl_mechanism": "PLAIN"}, "SCRAM only"),
        ({"kafka_sasl_password": SecretStr("")}, "ELECTION_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_password": SecretStr('a"],b')}, "must not contain"),
    ],
)
def test_a_scram_user_the_storage_tool_cannot_take_is_refused(
    update: dict[str, object], message: str
) -> None:
    settings = sasl(kafka_sasl_port=29094).model_copy(update=update)
    with pytest.raises(ServiceError, match=message):
        scram_credential(settings)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    found = sentinel_url(
        "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,sentinel-c:26380/night/2"
    )
    assert found == SentinelURL(
        [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("sentinel-c", 26380)], "night", 2, "s3cret"
    )
    assert sentinel_url("redis+sentinel://127.0.0.1:1/night") == SentinelURL(
        [("127.0.0.1", 1)], "night"
    )
    assert sentinel_url("redis://127.0.0.1:6379/0") is None


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",  # no service
        "redis+sentinel:///night/0",  # no Sentinel
        "redis+sentinel://127.0.0.1:port/night",
        "redis+sentinel://127.0.0.1:26379/night/zero",
        "redis+sentinel://127.0.0.1:26379/night/0/extra",
    ],
)
def test_a_malformed_sentinel_url_says_what_one_looks_like(url: str) -> None:
    with pytest.raises(ConnectionSettingsError, match="redis\\+sentinel"):
        sentinel_url(url)


async def test_a_sentinel_url_gives_clients_that_ask_the_sentinels_for_the_primary() -> None:
    settings = Settings(
        redis_url="redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/night/3",
        redis_password=SecretStr("setting"),
    )
    client = redis_from_settings(settings, socket_timeout=5)
    pool = client.connection_pool
    assert isinstance(pool, AsyncSentinelPool)
    assert pool.service_name == "night" and pool.is_master
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["password"] == "setting"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    # The Sentinels have no password of the data nodes, and the caller's socket timeout.
    asking = sentinels[0].connection_pool.connection_kwargs
    assert asking["password"] is None and asking["socket_timeout"] == 5
    await client.aclose()

    blocking = sync_redis_from_settings(
        settings.model_copy(update={"redis_url": "redis+sentinel://:in-url@127.0.0.1:1/night"})
    )
    pool = blocking.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.connection_kwargs["password"] == "in-url"  # the URL's wins, as for redis://
    asking = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert asking["socket_timeout"] == SENTINEL_SOCKET_TIMEOUT_S
    blocking.close()
