"""The desk page's views: what they serve and with which headers, what they refuse, and its
script's pure helpers (the event-stream parser, countdowns, error texts) in Node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.pipeline.app import create_app
from streams.settings import Settings
from streams.web import desk_page
from streams.web.desk_page import PAGE_FILE, PAGE_FILES, STATIC_FILES
from streams.web.guard import GuardedView
from streams.web.live_page import CONTENT_SECURITY_POLICY, STATIC_DIR, static_file

app = create_app(Settings())

DESK_FILES = [PAGE_FILE, *STATIC_FILES]


async def get(path: str) -> Any:
    """Route a GET through the worker's own router and call the view, without a server."""
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    request = make_mocked_request("GET", path, app=web.web_app)
    match = await web.web_app.router.resolve(request)
    request._match_info = match
    return await match.handler(request)


@pytest.mark.parametrize("path", ["/desk", "/desk/"])
async def test_desk_serves_the_page_with_the_strict_policy(path: str) -> None:
    response = await get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.body == (STATIC_DIR / PAGE_FILE).read_bytes()
    assert b'data-testid="held-list"' in response.body
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("name", sorted(STATIC_FILES))
async def test_its_script_and_style_sheet_are_served_with_their_types(name: str) -> None:
    response = await get("/desk/static/" + name)
    assert response.status == 200
    assert response.headers["Content-Type"] == STATIC_FILES[name]
    assert response.body == (STATIC_DIR / name).read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/desk/static/..%2Fdesk_page.py",
        "/desk/static/..%2F..%2Fsettings.py",
        "/desk/static/desk_page.py",
        "/desk/static/desk.html",  # the page has its own path, /desk
        "/desk/static/app.js",  # the live page's, not the desk's
        "/desk/static/index.html",
        "/desk/static/DESK.JS",
        "/desk/static/desk.js.map",
        "/desk/static/.gitignore",
        "/desk/static/%2Fetc%2Fpasswd",
    ],
)
async def test_anything_else_under_desk_static_is_not_found(path: str) -> None:
    response = await get(path)
    assert response.status == 404


def test_files_outside_the_list_are_never_read() -> None:
    assert static_file("desk.js", PAGE_FILES) is not None
    assert static_file(PAGE_FILE, PAGE_FILES) is not None
    for name in ("../desk_page.py", "app.js", "style.css", "", ".", "static/desk.js"):
        assert static_file(name, PAGE_FILES) is None, name


def test_the_page_is_not_guarded_and_not_under_the_api() -> None:
    """The page holds no data: it is served to anyone, and asks /api/desk/ with a token."""
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    for path, view_class in desk_page.ROUTES.items():
        assert not issubclass(view_class, GuardedView), path
        assert not path.startswith("/api/"), path
        view = web.views[path]  # as the worker registered it
        assert isinstance(view, view_class), path
        assert view.get_methods() <= {"GET", "HEAD", "OPTIONS"}, path


def test_page_fetches_nothing_from_elsewhere() -> None:
    """No CDN, no web fonts, no address outside the worker in any of the page's files, and
    data reaches the DOM only as text."""
    for name in DESK_FILES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|@import|@font-face|url\(", text), (
            name
        )
    script = (STATIC_DIR / "desk.js").read_text(encoding="utf-8")
    assert not re.search(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|"
        r"setAttribute\('on|EventSource",
        script,
    )
    # The token is sent as a header and kept in this tab; never in a URL, never in a cookie.
    assert "document.cookie" not in script and "localStorage" not in script
    assert "Authorization: 'Bearer ' + model.token" in script


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []
        self.named_inputs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("input", "textarea") and "name" in named:
            self.named_inputs.append(str(named.get("id")))
        self.urls += [v for k, v in attrs if k in ("src", "href", "action") and v is not None]
        if named.get("id"):
            self.ids.add(str(named["id"]))
        if tag == "script" and "src" not in named:
            self.inline_scripts += 1
        self.inline_handlers += [k for k, _ in attrs if k.startswith("on")]
        if tag == "style" or "style" in named:
            self.inline_handlers.append("style")


def test_page_loads_only_its_own_files_and_runs_under_the_policy() -> None:
    html = _Links()
    html.feed((STATIC_DIR / PAGE_FILE).read_text(encoding="utf-8"))
    served = {"/desk/static/" + name for name in STATIC_FILES}
    assert set(html.urls) - {"data:,"} == served
    # script-src 'self' and style-src 'self' refuse inline scripts, handlers and styles.
    assert html.inline_scripts == 0 and html.inline_handlers == []
    # No field has a name: were the script not running, a form sent by the browser itself
    # (which form-action 'none' refuses anyway) would carry none of them, the token least.
    assert html.named_inputs == []
    # Every element the script looks up by id is in the page.
    script = (STATIC_DIR / "desk.js").read_text(encoding="utf-8")
    wanted = set(re.findall(r"\$\('([a-z-]+)'\)", script))
    assert wanted and wanted <= html.ids, wanted - html.ids


NODE_CHECK = r"""
const h = require(process.argv[2]);
const events = [], comments = [];
const parse = (chunks) => {
  const seen = [], notes = [];
  const p = h.createEventStreamParser((e) => seen.push(e), (c) => notes.push(c));
  chunks.forEach((c) => p.feed(c));
  return { seen, notes, lastId: p.lastEventId, retry: p.retry };
};
const stream = ': hello\r\nretry: 300\n\nevent: desk\ndata: {"a":\ndata: 1}\nid: 7\n\n'
  + ': heartbeat\n\nevent: desk\r\ndata:{"b":2}\r\n\r\nevent: other\ndata: x\n\n'
  + 'data\n\nevent: desk\ndata: {"cut": 1}';
const whole = parse([stream]);
// The same stream cut at every place, and one character at a time, parses the same.
const cuts = [];
for (let i = 0; i <= stream.length; i++) {
  cuts.push(JSON.stringify(parse([stream.slice(0, i), stream.slice(i)]).seen));
}
const byChar = parse(stream.split(''));
const now = Date.parse('2024-07-05T01:00:00Z');
console.log(JSON.stringify({
  whole,
  sameAtEveryCut: cuts.every((c) => c === JSON.stringify(whole.seen)),
  byChar: JSON.stringify(byChar.seen) === JSON.stringify(whole.seen),
  durations: [0, 999, 1000, 61000, 3723000, -5000].map(h.formatDuration),
  countdowns: [
    h.countdown(null, now), h.countdown('2024-07-05T01:04:05Z', now),
    h.countdown('2024-07-05T00:59:00Z', now), h.countdown('nonsense', now),
  ],
  heldFor: [h.heldFor('2024-07-05T00:59:20Z', now), h.heldFor('2024-07-05T00:45:00Z', now)],
  clock: h.formatClock('2024-07-04T23:14:05Z'),
  errors: [
    h.errorText(409, {
      error: 'already_decided', decision: { action: 'kill', by: 'ed', at: '2024-07-04T23:14:05Z' },
    }),
    h.errorText(404, { error: 'not_held' }),
    h.errorText(422, { error: 'bad_headline', detail: 'too long' }),
    h.errorText(500, null),
    h.errorText(403, { error: 'vera is a viewer: this needs editor' }),
  ],
  edits: [
    h.editPayload({ headline: 'A', body: 'b' }, '  A  ', 'b'),
    h.editPayload({ headline: 'A', body: 'b' }, 'New', 'b'),
    h.editPayload({ headline: 'A', body: 'b' }, 'A', 'c'),
    h.editPayload({ headline: 'A', body: 'b' }, '   ', 'c'),
    h.editPayload({ headline: 'A', body: 'b' }, 'é'.repeat(140), 'b'),
    h.editPayload({ headline: 'A', body: 'b' }, '🗳'.repeat(141), 'b'),
  ].map((r) => r.payload || r.error),
  rows: h.conflictRows({ sources: [
    { source: 'pa', votes: { Lab: 10, Con: 20 } },
    { source: 'replay', votes: { Lab: 10, Con: 25, Grn: 3 } },
  ] }),
  backoff: [0, 1, 4, 10].map((n) => [h.backoffMs(n, 0), h.backoffMs(n, 1)]),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_desk_helpers_in_node(tmp_path: Path) -> None:
    check = tmp_path / "check.js"
    check.write_text(NODE_CHECK, encoding="utf-8")
    out = subprocess.run(
        ["node", str(check), str(STATIC_DIR / "desk.js")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    whole = result["whole"]
    # Multi-line data joined by a newline; CRLF as LF; comments apart; an event named "other"
    # and a bare "data" line are events too; the last, without its blank line, is not yet one.
    assert whole["seen"] == [
        {"type": "desk", "data": '{"a":\n1}', "id": "7"},
        {"type": "desk", "data": '{"b":2}', "id": "7"},
        {"type": "other", "data": "x", "id": "7"},
        {"type": "message", "data": "", "id": "7"},
    ]
    assert whole["notes"] == ["hello", "heartbeat"]
    assert (whole["lastId"], whole["retry"]) == ("7", 300)
    assert result["sameAtEveryCut"] and result["byChar"]
    assert result["durations"] == ["0:00", "0:01", "0:01", "1:01", "1:02:03", "0:00"]
    assert result["countdowns"] == [
        {"text": "Waits for an editor", "seconds": None},
        {"text": "Auto-release in 4:05", "seconds": 245},
        {"text": "Auto-release due now", "seconds": 0},
        {"text": "Waits for an editor", "seconds": None},
    ]
    assert result["heldFor"] == ["held 40 s", "held 15 min"]
    assert result["clock"] == "00:14:05"  # the night's clock: British Summer Time
    assert result["errors"] == [
        "Already decided: killed by ed at 00:14:05",
        "No longer on the desk: someone decided it, or it was released",
        "bad_headline: too long",
        "The desk answered 500",
        "vera is a viewer: this needs editor",
    ]
    assert result["edits"] == [
        "Nothing changed: Approve sends it as made",
        {"headline": "New"},
        {"body": "c"},
        "The headline cannot be empty",
        {"headline": "é" * 140},  # characters, not bytes
        "The headline is 141 characters: at most 140",
    ]
    assert result["rows"] == [
        {"party": "Con", "votes": [20, 25], "differs": True},
        {"party": "Lab", "votes": [10, 10], "differs": False},
        {"party": "Grn", "votes": [None, 3], "differs": True},
    ]
    assert result["backoff"] == [[500, 1000], [1000, 2000], [8000, 16000], [15000, 30000]]
