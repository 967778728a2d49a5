"""Give, list and revoke the newsroom desk's tokens, one per person, on the audit trail.

    election-desk-tokens add NAME --role viewer|editor|admin   # prints the token, once
    election-desk-tokens list                                   # names, roles, when, by whom
    election-desk-tokens revoke NAME

Only a token's SHA-256 is kept (in Redis, `desk:people` under ELECTION_REDIS_KEY_PREFIX).
Giving and revoking are written to the audit topic (ELECTION_TOPIC_AUDIT) first, as
`console:<user>`: with Kafka unreachable nothing changes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any, TextIO

from schemas.audit import AuditAction, Role
from scripts.console_audit import console_audit, console_person, not_recorded
from streams.connections import redis_from_settings
from streams.pipeline.audit import AuditNotWritten
from streams.rules.desk import (
    Enrolment,
    NameRefused,
    Person,
    check_name,
    new_token,
    token_digest,
)
from streams.settings import Settings, get_settings
from streams.store.desk import DeskPeople


def on_record(enrolment: Enrolment) -> dict[str, Any]:
    """What the audit trail says of a token: never the token or its digest."""
    return {
        "name": enrolment.person.name,
        "role": enrolment.person.role.value,
        "created_at": enrolment.created_at.isoformat(),
        "created_by": enrolment.created_by,
    }


async def add(settings: Settings, name: str, role: Role, out: TextIO) -> int:
    check_name(name)
    redis = redis_from_settings(settings)
    try:
        people = DeskPeople(redis, settings.redis_key_prefix)
        if await people.find(name) is not None:
            print(f"{name} already has a token: revoke it first", file=sys.stderr)
            return 1
        who = console_person()
        token = new_token()
        enrolment = Enrolment(
            Person(name, role), token_digest(token), dt.datetime.now(dt.UTC), who.name
        )
        with console_audit(settings) as trail:
            async with trail.acting(AuditAction.TOKEN_ADD, who, name, after=on_record(enrolment)):
                if not await people.enrol(enrolment):
                    raise NameRefused(f"{name} was given a token meanwhile: revoke it first")
    finally:
        await redis.aclose()
    print(f"{name} ({role}): {token}", file=out)
    print("Shown this once and kept nowhere: hand it to them now.", file=out)
    return 0


async def revoke(settings: Settings, name: str, out: TextIO) -> int:
    redis = redis_from_settings(settings)
    try:
        people = DeskPeople(redis, settings.redis_key_prefix)
        enrolment = await people.find(name)
        if enrolment is None:
            print(f"{name} has no token", file=sys.stderr)
            return 1
        with console_audit(settings) as trail:
            async with trail.acting(
                AuditAction.TOKEN_REVOKE, console_person(), name, before=on_record(enrolment)
            ):
                await people.revoke(name)
    finally:
        await redis.aclose()
    print(f"revoked {name}'s token ({enrolment.person.role})", file=out)
    return 0


async def listing(settings: Settings, out: TextIO) -> int:
    redis = redis_from_settings(settings)
    try:
        enrolled = await DeskPeople(redis, settings.redis_key_prefix).enrolled()
    finally:
        await redis.aclose()
    if not enrolled:
        print("no one has a desk token", file=out)
    for enrolment in enrolled:
        person = enrolment.person
        print(
            f"{person.name:<40} {person.role:<7} "
            f"{enrolment.created_at.isoformat(timespec='seconds')} by {enrolment.created_by}",
            file=out,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="election-desk-tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="give NAME a token with a role (printed once)")
    adding.add_argument("name")
    adding.add_argument("--role", required=True, choices=[role.value for role in Role])
    commands.add_parser("list", help="everyone with a token: names, roles, when, by whom")
    revoking = commands.add_parser("revoke", help="take NAME's token away")
    revoking.add_argument("name")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "add":
            return asyncio.run(add(settings, args.name, Role(args.role), sys.stdout))
        if args.command == "revoke":
            return asyncio.run(revoke(settings, args.name, sys.stdout))
        return asyncio.run(listing(settings, sys.stdout))
    except NameRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    except AuditNotWritten as error:
        print(not_recorded(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
