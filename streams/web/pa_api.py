"""HTTP API in PA's XML, so a broadcast template that reads PA's files reads the worker's.

PA's ids are those of the feed ELECTION_PA_OUTPUT_FEED names (its mapping in
`{data_dir}/pa-feeds/`), loaded once per worker when first asked for.
"""

from __future__ import annotations

import logging
import weakref
from functools import cached_property

from faust.web import Request, Response, View
from pydantic import TypeAdapter, ValidationError

from schemas.common import ConstituencyId
from streams.feeds.pa.mapping import FeedMapping, load_feed_mapping
from streams.feeds.pa.xml_writer import seat_result_xml, state_of_parties_xml
from streams.pipeline.context import WorkerContext, context_of
from streams.rules.reference import ReferenceDataError
from streams.web.api import json_with_etag
from streams.web.body_cache import BodyCache

log = logging.getLogger(__name__)

XML = "application/xml; charset=utf-8"
# The message contract's own rule for an ONS id, so the API and the schemas agree on it.
_ONS_ID: TypeAdapter[str] = TypeAdapter(ConstituencyId)


class _PerWorker:
    """What the PA views of one worker share: the feed's ids and the cached state document."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.state = BodyCache()

    @cached_property
    def mapping(self) -> FeedMapping:
        settings = self.context.settings
        return load_feed_mapping(settings.data_dir, settings.pa_output_feed, self.context.register)


# By context, not on it, as the JSON views keep theirs (streams/web/api.py).
_PER_WORKER: weakref.WeakKeyDictionary[WorkerContext, _PerWorker] = weakref.WeakKeyDictionary()


def _per_worker(context: WorkerContext) -> _PerWorker:
    shared = _PER_WORKER.get(context)
    if shared is None:
        shared = _PER_WORKER[context] = _PerWorker(context)
    return shared


def _mapping(view: View, shared: _PerWorker) -> FeedMapping | Response:
    """The feed's ids, or a 503 saying why there are none (a deployment's mistake)."""
    try:
        return shared.mapping
    except ReferenceDataError as error:
        log.error("PA output has no feed mapping: %s", error)
        return view.json({"error": f"no PA ids to write with: {error}"}, status=503)


class PaStateOfPartiesView(View):
    """The state of the parties as PA's FirstPastThePostStateOfParties, built once per change."""

    async def get(self, request: Request) -> Response:
        context = context_of(self.app)
        shared = _per_worker(context)
        mapping = _mapping(self, shared)
        if not isinstance(mapping, FeedMapping):
            return mapping
        store, register = context.store, context.register

        async def build() -> bytes:
            return state_of_parties_xml(await store.state(register), mapping, register)

        body = await shared.state.get(build, store.sequence)
        return _flagged(json_with_etag(request, body, content_type=XML), context)


class PaSeatView(View):
    """One seat's result as PA's FirstPastThePostResult, or its rush or recount notice."""

    async def get(self, request: Request, ons_id: str) -> Response:
        context = context_of(self.app)
        try:
            _ONS_ID.validate_python(ons_id)
        except ValidationError:
            return self.json({"error": "not an ONS constituency id, e.g. E14001290"}, status=400)
        if context.register.constituency(ons_id) is None:
            return self.json({"error": f"no constituency {ons_id}"}, status=404)
        mapping = _mapping(self, _per_worker(context))
        if not isinstance(mapping, FeedMapping):
            return mapping
        seat = await context.store.seat(ons_id)
        if seat is None:
            return self.json({"error": f"{ons_id} has not declared"}, status=404)
        body = seat_result_xml(seat, mapping, context.register)
        return _flagged(json_with_etag(request, body, content_type=XML), context)


# PA's documents have no place for it, and a template built on PA must read them unchanged:
# whether this is a rehearsal's output travels beside the document, in a header.
REHEARSAL_HEADER = "X-Election-Rehearsal"


def _flagged(response: Response, context: WorkerContext) -> Response:
    response.headers[REHEARSAL_HEADER] = str(context.settings.mode == "rehearsal").lower()
    return response


ROUTES: dict[str, type[View]] = {
    "/api/pa/state-of-parties.xml": PaStateOfPartiesView,
    "/api/pa/seats/{ons_id}.xml": PaSeatView,
}
