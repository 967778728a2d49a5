"""The desk's people: their names, roles and tokens, and who a bearer token belongs to."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.audit import Role

# Letters, digits, dots, dashes and underscores: a name goes into logs, into the audit trail
# and after `desk:` into a declaration's source, so it never needs quoting anywhere.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
# Who ELECTION_ADMIN_TOKEN is on the record; no token of a person may take the name.
BOOTSTRAP_ADMIN = "bootstrap-admin"
# Who acted through election-desk-tokens, before the operating system's user name.
CONSOLE = "console:"
# Marks a desk token wherever it turns up (a paste, a log a proxy wrote), for secret scanners.
TOKEN_PREFIX = "desk_"
TOKEN_BYTES = 32

_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Person:
    """Someone acting at the desk: the name they are on the record under, and their role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        """Each role may do everything the roles below it may."""
        return _RANK[self.role] >= _RANK[needed]


@dataclass(frozen=True)
class Enrolment:
    """A person's token as kept: its SHA-256, never the token itself."""

    person: Person
    digest: bytes
    created_at: dt.datetime
    created_by: str


class NameRefused(ValueError):
    """A name no token may be given: the message says why."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise NameRefused(
            f"{name!r} is not a name the desk takes: 1 to 40 of a-z, 0-9, '.', '-', '_', "
            "starting with a letter or digit"
        )
    if name == BOOTSTRAP_ADMIN:
        raise NameRefused(f"{BOOTSTRAP_ADMIN} is ELECTION_ADMIN_TOKEN's name on the record")
    return name


def new_token() -> str:
    """256 random bits: nothing to guess, so a fast hash of it is as safe as a slow one."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """What is kept of a token and compared. SHA-256, not scrypt or PBKDF2: those slow down
    guessing a password people chose, and a token of 256 random bits cannot be guessed; made
    slow on purpose, they would spend the worker's CPU on every desk request, there for the
    taking by anyone who sends made-up tokens. Unkeyed: a server secret would be one more to
    hand every worker and the command, and would guard only against someone who can write
    to Redis, who can change the tallies themselves."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def identify(
    token: str, enrolled: Iterable[Enrolment], bootstrap_admin: str | None = None
) -> Person | None:
    """Whose token this is, or None.

    Every comparison is of digests, in constant time, and all of them are made whichever
    matches: how long the answer takes says nothing about which stored token came close.
    `bootstrap_admin` is ELECTION_ADMIN_TOKEN (unset or empty: no bootstrap admin).
    """
    digest = token_digest(token)
    found: Person | None = None
    for enrolment in enrolled:
        if hmac.compare_digest(digest, enrolment.digest):
            found = enrolment.person
    if bootstrap_admin and hmac.compare_digest(digest, token_digest(bootstrap_admin)):
        found = Person(BOOTSTRAP_ADMIN, Role.ADMIN)
    return found
