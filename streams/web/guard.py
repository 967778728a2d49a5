"""Who may do what over HTTP: every admin and desk view names the role each method needs.

A view that changes state is a GuardedView:

    class ResetView(GuardedView):
        roles: ClassVar[Mapping[str, Role]] = {"POST": Role.ADMIN}

        async def post(self, request: Request) -> Any:
            who = current_person()  # checked before this runs
            ...

The check runs in `dispatch`, before any handler: a missing or unknown token is 401, a role
too low 403, a method the view does not name 405. tests/unit/test_admin.py walks every route
of the app and fails on one that answers anything but GET, HEAD or OPTIONS, or lies under
/api/admin/ or /api/desk/, without being a GuardedView, and tries each with no token, a
wrong one, and every role's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from aiohttp import web as aiohttp_web
from faust.web import Request, View
from redis.exceptions import RedisError

from schemas.audit import Role
from streams.pipeline.context import WorkerContext, context_of
from streams.rules.desk import Person, bearer_token, identify
from streams.store.desk import DeskPeople

log = logging.getLogger(__name__)

# Who the request being handled is from: set by the check for the handler it then awaits,
# in the same task (a request's own; a keep-alive connection's next request sets it anew).
_CURRENT: ContextVar[Person] = ContextVar("desk_person")


def answer(status: int, error: str, **headers: str) -> aiohttp_web.Response:
    return aiohttp_web.json_response({"error": error}, status=status, headers=headers)


async def caller(request: Request, context: WorkerContext, needed: Role) -> Person | Any:
    """The person whose bearer token the request carries, if their role is at least `needed`;
    else the answer to send instead. Neither the answer nor the log names the token."""
    # rel_url, not url: aiohttp 3.9 builds `url` from the Host header, which newer yarl
    # refuses when it carries a port (the lowest versions we declare fail on every request).
    path = request.rel_url.path
    token = bearer_token(request.headers.get("Authorization", ""))
    settings = context.settings
    bootstrap = settings.admin_token.get_secret_value() if settings.admin_token else None
    person = None
    if token is not None:
        try:
            enrolled = await DeskPeople(context.redis, settings.redis_key_prefix).enrolled()
        except RedisError as error:
            log.error("request to %s refused: the desk's people unreadable: %r", path, error)
            return answer(503, "the desk's people could not be read from Redis; try again")
        person = identify(token, enrolled, bootstrap)
    if person is None:
        log.warning("request to %s refused: missing or unknown token", path)
        return answer(401, "missing or unknown token", **{"WWW-Authenticate": "Bearer"})
    if not person.may(needed):
        log.warning(
            "request to %s refused: %s is a %s, not %s", path, person.name, person.role, needed
        )
        return answer(403, f"{person.name} is a {person.role}: this needs {needed}")
    return person


def current_person() -> Person:
    """Who is asking, as the check found them (only inside a GuardedView's handler)."""
    return _CURRENT.get()


class GuardedView(View):
    """A view whose every method needs a person with at least the role `roles` names for it
    (HEAD as GET); any other method is refused before a handler is reached."""

    roles: ClassVar[Mapping[str, Role]]

    async def dispatch(self, request: Any) -> Any:
        needed = self.roles.get("GET" if request.method == "HEAD" else request.method)
        if needed is None:
            return answer(405, f"{request.method} is not allowed here")
        person = await caller(request, context_of(self.app), needed)
        if not isinstance(person, Person):
            return person
        checked = _CURRENT.set(person)
        try:
            return await super().dispatch(request)
        finally:
            _CURRENT.reset(checked)
