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
  rehearsal: [
    h.showsRehearsal({ rehearsal: false }, [{ rehearsal: false }], [{ rehearsal: false }]),
    h.showsRehearsal({ rehearsal: true }, [], []),
    h.showsRehearsal({ rehearsal: false }, [{ rehearsal: false }, { rehearsal: true }], []),
    h.showsRehearsal({ rehearsal: false }, [], [{ alert_id: 'unsaid' }]),
    h.showsRehearsal(null, [], []),
  ],
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
            str(ROOT / "streams/data/ge2024/constituencies.hexjson"),
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
    # Anything shown of a rehearsal brings the banner; what does not say is not taken for live.
    assert result["rehearsal"] == [False, True, True, True, False]


PROJECTION_CHECK = r"""
const h = require(process.argv[2]);
const party = (code, seats, poll) =>
  ({ party: code, seats, low: seats - 5, high: seats + 5, declared: 1, exit_poll: poll });
const state = (sequence, asOf, parties) => ({
  sequence,
  as_of: asOf,
  projection: {
    model: 'regional', seats_declared: 12, seats_with_figures: 10, as_of: asOf, parties,
  },
});
const at = (hhmm) => '2024-07-05T' + hhmm + ':00+01:00';
const codes = ['Lab', 'Con', 'LD', 'SNP', 'RUK'];
const polls = [410, 131, 61, 10, 13];
const figures = (seats) => seats.map((n, i) => party(codes[i], n, polls[i]));
// Snapshots as they arrive: 3 comes late, 2 arrives twice, 9 names nobody, 8 has none.
const arriving = [
  state(1, at('00:10'), figures([400, 150, 50, 20, 10])),
  state(2, at('00:20'), figures([405, 140, 55, 15, 25])),
  state(4, at('00:20'), figures([406, 139, 56, 15, 24])),
  state(3, at('00:15'), figures([402, 145, 52, 18, 12])),
  state(2, at('00:20'), figures([405, 140, 55, 15, 25])),
  state(9, at('00:30'), []),
  { sequence: 8, projection: null },
];
const history = [];
arriving.forEach((s) => h.addHistoryPoint(history, h.projectionPoint(s), 1000));
const capped = [];
arriving.forEach((s) => h.addHistoryPoint(capped, h.projectionPoint(s), 2));
const layout = h.layoutProjectionChart(history, { Lab: 410, Con: 131, Ind: 3 });
const many = ['Lab', 'Con', 'LD', 'SNP', 'RUK', 'Ind', 'Green', 'Spk']
  .map((c, i) => party(c, 100 - 10 * i, i < 2 ? 1 : null));
const rows = (projection) => h.projectionRows(projection);
const night = [Date.parse('2024-07-04T22:00:00Z'), Date.parse('2024-07-05T16:30:00Z')];
console.log(JSON.stringify({
  order: history.map((p) => p.sequence),
  capped: capped.map((p) => p.sequence),
  drawn: h.chartParties(history),
  points: layout.lines.map((l) => [l.party, l.points.length]),
  xs: layout.lines[0].points.map((p) => Math.round(p[0])),
  exitPolls: layout.exitPolls.map((p) => [p.party, p.seats]),
  seatsMax: layout.seatsMax,
  emptyLayout: h.layoutProjectionChart([], {}).lines.length,
  rows: rows({ parties: many }).map((r) => [r.party, r.seats]),
  sixRows: rows({ parties: many.slice(0, 6) }).length,
  noRows: [rows(null), rows({}), rows({ parties: 'x' })].map((r) => r.length),
  basis: h.projectionBasis(arriving[0].projection, 650),
  missing: [
    h.projectionOf({}), h.projectionOf({ projection: null }), h.projectionOf(null),
    h.projectionPoint({ sequence: 1 }),
  ],
  ticks: h.hourTicks(night[0], night[1], 5).map((t) => new Date(t).toISOString().slice(11, 16)),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_projection_helpers_in_node(tmp_path: Path) -> None:
    """The projection's history order, its chart's lines and the strip's rows, without a browser."""
    check = tmp_path / "projection.js"
    check.write_text(PROJECTION_CHECK, encoding="utf-8")
    out = subprocess.run(
        ["node", str(check), str(STATIC_DIR / "app.js")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    # By declaration time, then sequence: the late 3 in its place, the repeated 2 once, and
    # snapshots with nothing to plot left out.
    assert result["order"] == [1, 3, 2, 4]
    assert result["capped"] == [2, 4]  # the latest two by declaration time
    # Everyone ever in the top four (the SNP was, then Reform was), largest at the latest first.
    assert result["drawn"] == ["Lab", "Con", "LD", "RUK", "SNP"]
    assert result["points"] == [[party, 4] for party in result["drawn"]]
    left, width = 36, 420 - 36 - 12
    assert result["xs"] == [left, left + width // 2, left + width, left + width]
    assert result["exitPolls"] == [["Lab", 410], ["Con", 131]]  # Ind is not drawn
    assert result["seatsMax"] == 500
    assert result["emptyLayout"] == 0
    assert result["rows"] == [
        ["Lab", 100],
        ["Con", 90],
        ["LD", 80],
        ["SNP", 70],
        ["RUK", 60],
        ["Others", 120],
    ]
    assert result["sixRows"] == 6  # one party more than fits is named, not an "Others" of one
    assert result["noRows"] == [0, 0, 0]
    assert result["basis"] == (
        "Projection (regional swing) from 10 of 650 declared · 2 awaiting figures"
    )
    assert result["missing"] == [None, None, None, None]
    assert result["ticks"] == ["22:00", "02:00", "06:00", "10:00", "14:00"]
