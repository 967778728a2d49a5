"""The live page's views: what they serve, what they refuse, and that `/` is the page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.pipeline.app import create_app
from streams.settings import Settings
from streams.web.live_page import STATIC_DIR, STATIC_FILES

app = create_app(Settings())

ROOT = Path(__file__).resolve().parents[2]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


async def get(path: str) -> Any:
    """Route a GET through the worker's own router and call the view, without a server.

    Starting a server would freeze the shared router; other modules still add views to it.
    """
    # Faust's built-in blueprints (one of which also claims "/") are applied here, as the
    # worker does at start-up; applying them is idempotent.
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    request = make_mocked_request("GET", path, app=web.web_app)
    match = await web.web_app.router.resolve(request)
    request._match_info = match
    return await match.handler(request)


async def test_root_serves_the_page_not_fausts_index() -> None:
    response = await get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'data-testid="seat-bar"' in response.body
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", sorted(STATIC_FILES))
async def test_static_files_are_served_with_their_types(name: str) -> None:
    response = await get("/static/" + name)
    assert response.status == 200
    assert response.headers["Content-Type"] == STATIC_FILES[name]
    assert response.body == (STATIC_DIR / name).read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/static/..%2Flive_page.py", "/static/app.py", "/static/.gitignore"]
)
async def test_anything_else_under_static_is_not_found(path: str) -> None:
    response = await get(path)
    assert response.status == 404


async def test_hexmap_is_the_shipped_file() -> None:
    response = await get("/api/hexmap")
    assert response.status == 200
    hexmap = json.loads(response.body)
    assert hexmap["layout"] == "odd-r"
    assert len(hexmap["hexes"]) == 650


def test_page_fetches_nothing_from_elsewhere() -> None:
    """No CDN, no web fonts: every URL in the page's files is a path on the worker."""
    for name in STATIC_FILES:
        # The SVG namespace is a name, not an address anything is fetched from.
        text = (STATIC_DIR / name).read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|@font-face", text), name
    # Data reaches the DOM only as text: no innerHTML, outerHTML, insertAdjacentHTML, eval.
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)


NODE_CHECK = r"""
const h = require(process.argv[2]);
const hexjson = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));
const layout = h.layoutHexmap(hexjson, 10);
const seen = new Set(layout.cells.map((c) => c.x.toFixed(2) + ',' + c.y.toFixed(2)));
const byCell = new Map(layout.cells.map((c) => [c.q + ',' + c.r, c]));
// Every neighbour pair the odd-r rule names sits one hex width apart.
let pairs = 0, bad = 0;
layout.cells.forEach((c) => h.neighbours(c.q, c.r).forEach(([q, r]) => {
  const o = byCell.get(q + ',' + r);
  if (!o) return;
  pairs += 1;
  if (Math.abs(Math.hypot(o.x - c.x, o.y - c.y) - Math.sqrt(3) * 10) > 1e-6) bad += 1;
}));
console.log(JSON.stringify({
  cells: layout.cells.length, distinct: seen.size, pairs, bad,
  nationEdges: layout.nationEdges.length, regionEdges: layout.regionEdges.length,
  north: layout.cells.reduce((a, c) => (c.y < a.y ? c : a)).id,
  signed: [h.formatSigned(5), h.formatSigned(-3), h.formatSigned(0)],
  shareChange: h.formatShareChange(-0.2034),
  label: h.resultLabel({ winning_party: 'Lab', gain: true, previous_party: 'Con' }),
  text: [h.textColourOn('#FDF38E'), h.textColourOn('#E4003B')],
  rows: h.tableRows([
    { party: 'A', seats: 3, votes: 9, share: 0.5 },
    { party: 'B', seats: 0, votes: 1, share: 0.001 },
    { party: 'C', seats: 0, votes: 1, share: 0.001 },
    { party: 'D', seats: 0, votes: 0, share: 0 },
  ]).map((r) => r.party),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_page_helpers_in_node(tmp_path: Path) -> None:
    """The map geometry and the formatting the page relies on, checked without a browser."""
    check = tmp_path / "check.js"
    check.write_text(NODE_CHECK, encoding="utf-8")
    out = subprocess.run(
        [
            "node",
            str(check),
            str(STATIC_DIR / "app.js"),
            str(ROOT / "data/ge2024/constituencies.hexjson"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert result["cells"] == result["distinct"] == 650  # no two seats drawn on one spot
    assert result["pairs"] > 1500 and result["bad"] == 0
    assert result["nationEdges"] > 20 and result["regionEdges"] > 50
    assert result["north"] == "S14000051"  # Orkney and Shetland is the top of the map
    assert result["signed"] == ["+5", "−3", "0"]
    assert result["shareChange"] == "−20.3"
    assert result["label"] == "Lab gain from Con"
    assert result["text"] == ["#0B0F14", "#FFFFFF"]
    assert result["rows"] == ["A", "Others"]
