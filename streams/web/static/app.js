/* Live results screen: loads the worker's snapshot, then follows /api/events. No build step. */
'use strict';

(function (root) {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const DEFAULT_TOTAL_SEATS = 650;
  const DEFAULT_MAJORITY_LINE = 326;
  const TICKER_LENGTH = 10;
  const ALERTS_SHOWN = 3;
  const ALERTS_MAX_SHARE = 0.62; // of the news column's height; the ticker gets the rest
  const TABLE_ROWS = 10; // parties shown by name; the rest are summed into "Others"
  const TABLE_MIN_SHARE = 0.01; // a seatless party needs this share to get its own row
  // Coalesce bursts (a fast replay sends hundreds of events a second) into one repaint.
  const RENDER_DELAY_MS = 60;
  const RETRY_MS = 5000;
  const HEX_SIZE = 10; // centre to corner, in SVG units; the SVG scales to its panel
  const HEX_GAP = 0.9; // drawn hexes are this fraction of the cell, so neighbours read apart
  const PROJECTION_ROWS = 5; // parties named in the projection strip; the rest are "Others"
  const HISTORY_CAP = 2000; // projection snapshots kept for the chart, latest by declaration time
  const CHART_TOP = 4; // a party gets a line on the chart once it has been in the top four
  // The chart's SVG units are CSS pixels of the 1920×1080 design.
  const CHART_BOX = { width: 420, height: 96, left: 36, right: 12, top: 7, bottom: 20 };
  const MODEL_LABELS = { uniform: 'uniform swing', regional: 'regional swing' };

  // Broadcast colours, lightened where the official one disappears on a dark background.
  const PARTY_COLOURS = {
    Lab: '#E4003B',
    Con: '#0087DC',
    LD: '#FAA61A',
    SNP: '#FDF38E',
    Green: '#02A95B',
    RUK: '#12B6CF',
    PC: '#1D9A83',
    DUP: '#D46A4C',
    SF: '#3C8C5C',
    SDLP: '#7BC043',
    UUP: '#48A5EE',
    APNI: '#F6CB2F',
    TUV: '#5B7FC7',
    Spk: '#F2F2F2',
    Ind: '#C2BCB0',
  };
  const OTHER_COLOUR = '#8A939D';
  const UNDECLARED_COLOUR = '#2A3542';

  // Short names fit the table at wall-screen type sizes; unknown parties use the feed's name.
  const PARTY_SHORT_NAMES = {
    Lab: 'Labour',
    Con: 'Conservative',
    LD: 'Lib Dem',
    SNP: 'SNP',
    Green: 'Green',
    RUK: 'Reform UK',
    PC: 'Plaid Cymru',
    DUP: 'DUP',
    SF: 'Sinn Féin',
    SDLP: 'SDLP',
    UUP: 'UUP',
    APNI: 'Alliance',
    TUV: 'TUV',
    Spk: 'Speaker',
    Ind: 'Independent',
  };

  const PRIORITY_LABELS = { flash: 'Flash', high: 'High', normal: 'News', low: 'Note' };
  // A newsroom screen: a rehearsal's alerts too (apps get live ones only), under its banner.
  const ALERTS_PATH = '/api/alerts?rehearsal=1';
  const EVENTS_PATH = '/api/events?rehearsal=1';

  // ---- pure helpers (also loaded by the Node unit test) ----

  function partyColour(code) {
    return (code && PARTY_COLOURS[code]) || OTHER_COLOUR;
  }

  function partyShortName(code, fallback) {
    return PARTY_SHORT_NAMES[code] || fallback || code || '';
  }

  /** Dark or light text, whichever reads better on the given #rrggbb background. */
  function textColourOn(background) {
    const value = /^#([0-9a-f]{6})$/i.exec(background || '');
    if (!value) return '#FFFFFF';
    const channels = [0, 2, 4].map((i) => {
      const c = parseInt(value[1].slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    const luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    // Contrast against white (L=1) and near-black (L≈0.006); pick the larger.
    return (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.056) ? '#FFFFFF' : '#0B0F14';
  }

  function isOddRow(r) {
    // Rows go negative in this file; -23 is odd too.
    return Math.abs(r) % 2 === 1;
  }

  /** Centre of a pointy-top hex in an odd-r layout; HexJSON rows count upwards (north). */
  function hexCentre(q, r, size) {
    const width = Math.sqrt(3) * size;
    return { x: width * (q + (isOddRow(r) ? 0.5 : 0)), y: -1.5 * size * r };
  }

  /** The six neighbours of (q, r) in an odd-r layout, as [q, r] pairs. */
  function neighbours(q, r) {
    const shift = isOddRow(r) ? 0 : -1;
    return [
      [q - 1, r],
      [q + 1, r],
      [q + shift, r - 1],
      [q + shift + 1, r - 1],
      [q + shift, r + 1],
      [q + shift + 1, r + 1],
    ];
  }

  function hexPoints(cx, cy, radius) {
    const points = [];
    for (let k = 0; k < 6; k += 1) {
      const angle = (Math.PI / 180) * (60 * k - 90);
      points.push((cx + radius * Math.cos(angle)).toFixed(2) + ',' + (cy + radius * Math.sin(angle)).toFixed(2));
    }
    return points.join(' ');
  }

  /**
   * Positions of every hex and the borders between regions and between nations, as SVG
   * path data, with the bounding box; pure so the geometry can be tested without a browser.
   */
  function layoutHexmap(hexjson, size) {
    const hexes = (hexjson && hexjson.hexes) || {};
    const byCell = new Map();
    const cells = [];
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    Object.keys(hexes).forEach((id) => {
      const hex = hexes[id];
      const centre = hexCentre(hex.q, hex.r, size);
      const cell = { id: id, name: hex.n || id, q: hex.q, r: hex.r, region: hex.region || '', x: centre.x, y: centre.y };
      cells.push(cell);
      byCell.set(hex.q + ',' + hex.r, cell);
      minX = Math.min(minX, centre.x);
      maxX = Math.max(maxX, centre.x);
      minY = Math.min(minY, centre.y);
      maxY = Math.max(maxY, centre.y);
    });
    const regionEdges = [];
    const nationEdges = [];
    cells.forEach((cell) => {
      neighbours(cell.q, cell.r).forEach(([q, r]) => {
        const other = byCell.get(q + ',' + r);
        // Each shared edge once: from the cell with the smaller id.
        if (!other || other.region === cell.region || other.id < cell.id) return;
        const theta = Math.atan2(other.y - cell.y, other.x - cell.x);
        const a = theta - Math.PI / 6;
        const b = theta + Math.PI / 6;
        const segment =
          'M' + (cell.x + size * Math.cos(a)).toFixed(2) + ',' + (cell.y + size * Math.sin(a)).toFixed(2) +
          'L' + (cell.x + size * Math.cos(b)).toFixed(2) + ',' + (cell.y + size * Math.sin(b)).toFixed(2);
        // ONS region codes start with the nation's letter (E, S, W, N).
        (other.region.charAt(0) === cell.region.charAt(0) ? regionEdges : nationEdges).push(segment);
      });
    });
    const width = Math.sqrt(3) * size;
    const box = cells.length
      ? { x: minX - width, y: minY - size * 1.2, width: maxX - minX + 2 * width, height: maxY - minY + size * 2.4 }
      : { x: 0, y: 0, width: 1, height: 1 };
    return { cells: cells, regionEdges: regionEdges, nationEdges: nationEdges, box: box };
  }

  function formatInt(value) {
    return typeof value === 'number' && isFinite(value) ? value.toLocaleString('en-GB') : '–';
  }

  function formatSigned(value) {
    if (typeof value !== 'number' || !isFinite(value)) return '–';
    if (value === 0) return '0';
    // A real minus sign: a hyphen looks like a dash at a distance.
    return (value > 0 ? '+' : '−') + Math.abs(value).toLocaleString('en-GB');
  }

  function formatShare(fraction) {
    return typeof fraction === 'number' && isFinite(fraction) ? (fraction * 100).toFixed(1) + '%' : '–';
  }

  function formatShareChange(fraction) {
    if (typeof fraction !== 'number' || !isFinite(fraction)) return '–';
    const points = Math.round(fraction * 1000) / 10;
    if (points === 0) return '0.0';
    return (points > 0 ? '+' : '−') + Math.abs(points).toFixed(1);
  }

  function formatClock(iso) {
    if (!iso) return '–';
    const when = new Date(iso);
    if (isNaN(when.getTime())) return '–';
    try {
      // Declarations are UK events; show UK time whatever the screen's own zone.
      return when.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: 'Europe/London' });
    } catch (err) {
      return when.toTimeString().slice(0, 5);
    }
  }

  function electionTitle(electionId) {
    const match = /(\d{4})-(\d{2})-(\d{2})$/.exec(electionId || '');
    const kind = (electionId || '').indexOf('parl.') === 0 ? 'UK general election' : 'Election';
    if (!match) return kind;
    const day = new Date(Date.UTC(+match[1], +match[2] - 1, +match[3]));
    return kind + ' · ' + day.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
  }

  function resultLabel(seat) {
    if (seat.result_label) return seat.result_label;
    if (!seat.winning_party) return seat.recount ? 'Recount' : 'Awaiting result';
    if (seat.gain && seat.previous_party) return seat.winning_party + ' gain from ' + seat.previous_party;
    return seat.winning_party + (seat.gain ? ' gain' : ' hold');
  }

  /** Parties by seats, then votes, then code: a stable order so the bar does not shuffle. */
  function orderParties(parties) {
    return (parties || []).slice().sort((a, b) =>
      (b.seats || 0) - (a.seats || 0) || (b.votes || 0) - (a.votes || 0) || String(a.party).localeCompare(String(b.party)));
  }

  /** Rows of the table: the leading parties by name, the rest summed into one "Others" row. */
  function tableRows(parties) {
    // A party with neither seats nor votes yet (a pre-filled tally before midnight) is noise.
    const ordered = orderParties(parties).filter((p) => (p.seats || 0) > 0 || (p.votes || 0) > 0);
    const named = [];
    const rest = [];
    ordered.forEach((p) => {
      if (named.length < TABLE_ROWS && ((p.seats || 0) > 0 || (p.share || 0) >= TABLE_MIN_SHARE)) named.push(p);
      else rest.push(p);
    });
    if (rest.length === 1) named.push(rest[0]);
    if (rest.length > 1) {
      const sum = (field) => rest.reduce((total, p) => total + (p[field] || 0), 0);
      named.push({
        party: 'Others', name: 'Others', others: true, seats: sum('seats'), gains: sum('gains'),
        losses: sum('losses'), seats_change: sum('seats_change'), votes: sum('votes'), share: sum('share'),
        share_change: null,
      });
    }
    return named;
  }

  /** Which of two versions of a seat to keep: the one applied later by the worker. */
  function isNewerSeat(incoming, existing) {
    if (!existing) return true;
    if (typeof incoming.sequence === 'number' && typeof existing.sequence === 'number' && incoming.sequence !== existing.sequence) {
      return incoming.sequence > existing.sequence;
    }
    return (incoming.revision || 0) >= (existing.revision || 0);
  }

  /** Milliseconds of an ISO time; a missing or unreadable one sorts as the oldest. */
  function timeOf(iso) {
    const when = Date.parse(iso);
    return isNaN(when) ? -Infinity : when;
  }

  function compareTimesNewestFirst(a, b) {
    return a === b ? 0 : a > b ? -1 : 1;
  }

  /** Code-point order, as the API sorts names (localeCompare would differ from it). */
  function compareText(a, b) {
    const x = String(a === undefined || a === null ? '' : a);
    const y = String(b === undefined || b === null ? '' : b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  /**
   * Latest declarations first, by declaration time whatever order they arrived in: the
   * night's order (time, then name, then ONS id) reversed, as /api/declarations.
   */
  function compareSeats(a, b) {
    return compareTimesNewestFirst(timeOf(a.declared_at), timeOf(b.declared_at)) ||
      compareText(b.constituency_name, a.constituency_name) ||
      compareText(b.constituency_id, a.constituency_id);
  }

  /**
   * Newest alert first, by the time of what it tells (occurred_at), then by outbox sequence:
   * /api/alerts reversed. The exit poll sorts before the first declaration whenever it came.
   */
  function compareAlerts(a, b) {
    return compareTimesNewestFirst(timeOf(a.occurred_at), timeOf(b.occurred_at)) ||
      (b.sequence || 0) - (a.sequence || 0);
  }

  /** The `count` latest declarations of a collection of seats, in ticker order. */
  function latestSeats(seats, count) {
    return Array.from(seats || []).sort(compareSeats).slice(0, count);
  }

  /** The `count` newest alerts, in banner order. */
  function newestAlerts(alerts, count) {
    return Array.from(alerts || []).sort(compareAlerts).slice(0, count);
  }

  // ---- the projection: strip rows, history and chart geometry (pure) ----

  function isNumber(value) {
    return typeof value === 'number' && isFinite(value);
  }

  /** The projection a state carries, or null when it has none (or something unreadable). */
  function projectionOf(state) {
    const projection = state && typeof state === 'object' ? state.projection : null;
    return projection && typeof projection === 'object' && !Array.isArray(projection) ? projection : null;
  }

  function projectedParties(projection) {
    const parties = projection && Array.isArray(projection.parties) ? projection.parties : [];
    return parties.filter((p) => p && typeof p === 'object' && p.party && isNumber(p.seats));
  }

  /**
   * Rows of the projection strip: parties with projected seats, largest first (then seats
   * already won, then code), the rest summed into one "Others" row when there are several.
   */
  function projectionRows(projection, count) {
    const limit = count || PROJECTION_ROWS;
    const ordered = projectedParties(projection)
      .filter((p) => p.seats > 0)
      .sort((a, b) => b.seats - a.seats || (b.declared || 0) - (a.declared || 0) || compareText(a.party, b.party));
    if (ordered.length <= limit + 1) return ordered;
    const rest = ordered.slice(limit);
    const sum = (field) => rest.reduce((total, p) => total + (isNumber(p[field]) ? p[field] : 0), 0);
    // A range of a sum is not the sum of the ranges, and the exit poll's "Others" is not
    // these parties: neither is shown for the row.
    return ordered.slice(0, limit).concat([
      { party: 'Others', others: true, seats: sum('seats'), declared: sum('declared'), low: null, high: null, exit_poll: null },
    ]);
  }

  /** "Projection (regional swing) from 412 of 650 declared", and any seats awaiting figures. */
  function projectionBasis(projection, totalSeats) {
    if (!projection) return '';
    const model = MODEL_LABELS[projection.model] || (projection.model ? String(projection.model) + ' swing' : 'swing');
    const withFigures = isNumber(projection.seats_with_figures) ? projection.seats_with_figures : 0;
    const declared = isNumber(projection.seats_declared) ? projection.seats_declared : withFigures;
    let text = 'Projection (' + model + ') from ' + formatInt(withFigures) + ' of ' +
      formatInt(totalSeats || DEFAULT_TOTAL_SEATS) + ' declared';
    if (declared > withFigures) text += ' · ' + formatInt(declared - withFigures) + ' awaiting figures';
    return text;
  }

  /**
   * One point of the projection's history from a state: its sequence, the declaration time
   * the projection is as of (ms), each party's projected seats and the top four. Null when
   * there is nothing to plot.
   */
  function projectionPoint(state) {
    const projection = projectionOf(state);
    const parties = projectedParties(projection);
    if (!parties.length || !isNumber(state.sequence)) return null;
    const at = timeOf(projection.as_of || state.as_of);
    if (!isFinite(at)) return null;
    const seats = {};
    parties.forEach((p) => {
      seats[p.party] = p.seats;
    });
    const top = Object.keys(seats)
      .filter((code) => seats[code] > 0)
      .sort((a, b) => seats[b] - seats[a] || compareText(a, b))
      .slice(0, CHART_TOP);
    return { sequence: state.sequence, at: at, seats: seats, top: top };
  }

  /** History order: by declaration time, then by sequence (a late snapshot takes its place). */
  function compareHistoryPoints(a, b) {
    return a.at - b.at || a.sequence - b.sequence;
  }

  /**
   * Put a point into an ordered history (in place), replacing any of the same sequence, and
   * keep only the latest `cap` points. Returns the history.
   */
  function addHistoryPoint(history, point, cap) {
    if (!point) return history;
    for (let i = history.length - 1; i >= 0; i -= 1) {
      if (history[i].sequence === point.sequence) {
        history.splice(i, 1);
        break;
      }
    }
    let lo = 0;
    let hi = history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareHistoryPoints(history[mid], point) <= 0) lo = mid + 1;
      else hi = mid;
    }
    history.splice(lo, 0, point);
    const limit = cap || HISTORY_CAP;
    if (history.length > limit) history.splice(0, history.length - limit);
    return history;
  }

  /** The parties drawn: every one ever in a point's top four, largest at the latest first. */
  function chartParties(history) {
    const drawn = new Set();
    history.forEach((point) => point.top.forEach((code) => drawn.add(code)));
    const latest = history.length ? history[history.length - 1].seats : {};
    return Array.from(drawn).sort((a, b) => (latest[b] || 0) - (latest[a] || 0) || compareText(a, b));
  }

  /** A round top for the seats axis: the next 50 (100 past 300) above everything drawn. */
  function niceSeatsMax(value) {
    const step = value > 300 ? 100 : 50;
    return Math.max(step, Math.ceil((value + 1) / step) * step);
  }

  /** Whole hours between two times, from the first, at most `most` of them, as ms. */
  function hourTicks(from, to, most) {
    const hour = 3600 * 1000;
    const steps = [1, 2, 3, 4, 6, 12, 24];
    // UK time is a whole number of hours from UTC: a whole UTC hour is a whole UK one.
    const first = Math.ceil(from / hour) * hour;
    for (let i = 0; i < steps.length; i += 1) {
      const step = steps[i] * hour;
      if (Math.floor((to - first) / step) + 1 <= most) {
        const ticks = [];
        for (let t = first; t <= to; t += step) ticks.push(t);
        return ticks;
      }
    }
    return [];
  }

  /**
   * Where everything on the history chart goes, in the box's units: one line per drawn party
   * (a point for every snapshot: a party a snapshot does not name had none), the exit poll's
   * figure for each drawn party it named, and the axes' ticks.
   */
  function layoutProjectionChart(history, exitPolls, box) {
    const frame = box || CHART_BOX;
    const parties = chartParties(history);
    const polls = exitPolls || {};
    let top = 0;
    history.forEach((point) => parties.forEach((code) => {
      top = Math.max(top, point.seats[code] || 0);
    }));
    parties.forEach((code) => {
      if (isNumber(polls[code])) top = Math.max(top, polls[code]);
    });
    const seatsMax = niceSeatsMax(top);
    const plotWidth = frame.width - frame.left - frame.right;
    const plotHeight = frame.height - frame.top - frame.bottom;
    const from = history.length ? history[0].at : 0;
    const to = history.length ? history[history.length - 1].at : 0;
    const xOf = (at) => frame.left + (to > from ? (at - from) / (to - from) : 0) * plotWidth;
    const yOf = (seats) => frame.top + plotHeight * (1 - seats / seatsMax);
    const lines = parties.map((code) => {
      const points = history.map((point) => [xOf(point.at), yOf(point.seats[code] || 0)]);
      const d = points.map((p, i) => (i ? 'L' : 'M') + p[0].toFixed(1) + ',' + p[1].toFixed(1)).join('');
      return { party: code, points: points, d: d, seats: history.length ? history[history.length - 1].seats[code] || 0 : 0 };
    });
    const exitPollLines = parties
      .filter((code) => isNumber(polls[code]))
      .map((code) => ({ party: code, seats: polls[code], y: yOf(polls[code]) }));
    const seatStep = seatsMax / 2;
    const yTicks = [0, seatStep, seatsMax].map((seats) => ({ seats: seats, y: yOf(seats) }));
    let times = history.length ? hourTicks(from, to, 5) : [];
    if (times.length < 2) times = history.length ? (to > from ? [from, to] : [from]) : [];
    const xTicks = times.map((at) => ({ at: at, x: xOf(at) }));
    return { parties: parties, lines: lines, exitPolls: exitPollLines, yTicks: yTicks, xTicks: xTicks, seatsMax: seatsMax, box: frame };
  }

  /** A message is a rehearsal's unless it says false, as the worker judges: one that does
   * not say is never taken for the live night's. */
  function isRehearsal(message) {
    return !!message && typeof message === 'object' && message.rehearsal !== false;
  }

  /** Whether anything the page shows came from a rehearsal: the state, a seat or an alert. */
  function showsRehearsal(state, seats, alerts) {
    return isRehearsal(state) || seats.some(isRehearsal) || alerts.some(isRehearsal);
  }

  const helpers = {
    isRehearsal, showsRehearsal, partyColour, partyShortName, textColourOn, isOddRow, hexCentre, neighbours, layoutHexmap,
    formatInt, formatSigned, formatShare, formatShareChange, formatClock, electionTitle,
    resultLabel, orderParties, tableRows, isNewerSeat, compareSeats, compareAlerts, latestSeats,
    newestAlerts, projectionOf, projectionRows, projectionBasis, projectionPoint,
    compareHistoryPoints, addHistoryPoint, chartParties, hourTicks, layoutProjectionChart,
    PARTY_COLOURS,
  };

  if (typeof module === 'object' && module.exports) module.exports = helpers;
  if (typeof document === 'undefined') return;

  // ---- the page ----

  const model = {
    state: null, // StateOfParties
    seats: new Map(), // ons id -> SeatResult
    alerts: new Map(), // alert id -> Alert
    ready: false, // snapshot applied; events before that wait in `pending`
    pending: [],
    // The latest projection seen: { projection, sequence, totalSeats } of the newest state that
    // carried one (a state without one, e.g. an older /api/state, keeps it).
    projection: null,
    projectionHistory: [], // points from every state received, in history order
  };
  const dirty = { state: false, seats: new Set(), ticker: false, alerts: false, projection: false };
  const view = { hexes: new Map(), segments: new Map(), renderTimer: null, source: null, hadError: false };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach((key) => node.setAttribute(key, attrs[key]));
    return node;
  }

  function setConnection(status, text) {
    $('connection').setAttribute('data-status', status);
    $('connection-text').textContent = text;
  }

  function scheduleRender() {
    if (view.renderTimer !== null) return;
    view.renderTimer = setTimeout(() => {
      view.renderTimer = null;
      render();
    }, RENDER_DELAY_MS);
  }

  // ---- hex map ----

  function buildHexmap(hexjson) {
    const layout = layoutHexmap(hexjson, HEX_SIZE);
    const box = layout.box;
    const map = svg('svg', {
      viewBox: [box.x, box.y, box.width, box.height].map((v) => v.toFixed(1)).join(' '),
      preserveAspectRatio: 'xMidYMid meet',
      role: 'img',
      'aria-label': 'Hex map of ' + layout.cells.length + ' constituencies',
      'data-testid': 'hexmap',
    });
    const group = svg('g', { class: 'hexes' });
    layout.cells.forEach((cell) => {
      const hex = svg('polygon', {
        class: 'hex',
        points: hexPoints(cell.x, cell.y, HEX_SIZE * HEX_GAP),
        fill: UNDECLARED_COLOUR,
        'data-testid': 'hex',
        'data-ons': cell.id,
      });
      const title = svg('title');
      title.textContent = cell.name;
      hex.appendChild(title);
      group.appendChild(hex);
      view.hexes.set(cell.id, { node: hex, title: title, name: cell.name });
    });
    map.appendChild(group);
    map.appendChild(svg('path', { class: 'border border--region', d: layout.regionEdges.join('') }));
    map.appendChild(svg('path', { class: 'border border--nation', d: layout.nationEdges.join('') }));
    $('hexmap').replaceChildren(map);
    model.seats.forEach((seat, id) => dirty.seats.add(id));
  }

  function paintHex(seat) {
    const hex = view.hexes.get(seat.constituency_id);
    if (!hex) return;
    const party = seat.winning_party;
    if (party) {
      hex.node.setAttribute('data-party', party);
      hex.node.setAttribute('fill', partyColour(party));
    } else {
      hex.node.removeAttribute('data-party');
      hex.node.setAttribute('fill', UNDECLARED_COLOUR);
    }
    hex.node.classList.toggle('hex--recount', Boolean(seat.recount));
    hex.node.classList.toggle('hex--gain', Boolean(seat.gain));
    hex.title.textContent = hex.name + ' — ' + resultLabel(seat);
  }

  function markLatestHex() {
    const latest = model.state && model.state.last_constituency_id;
    view.hexes.forEach((hex, id) => hex.node.classList.toggle('hex--latest', id === latest));
    const node = latest && view.hexes.get(latest);
    // Draw the latest seat last so its outline is not hidden under its neighbours.
    if (node) node.node.parentNode.appendChild(node.node);
  }

  // ---- seat bar, headline figures, party table ----

  function renderState() {
    const state = model.state;
    if (!state) return;
    const total = state.total_seats || DEFAULT_TOTAL_SEATS;
    const majority = state.majority_line || DEFAULT_MAJORITY_LINE;
    const parties = orderParties(state.parties);
    const byCode = new Map(parties.map((p) => [p.party, p]));
    const nameOf = (code) => partyShortName(code, byCode.has(code) ? byCode.get(code).name : code);

    $('election-name').textContent = electionTitle(state.election_id);
    $('seats-declared').textContent = (state.seats_declared || 0) + '/' + total;
    $('turnout').textContent = formatShare(state.turnout);
    $('as-of').textContent = formatClock(state.as_of);
    $('majority-label').textContent = majority + ' for a majority';
    $('majority-line').style.left = (100 * majority / total) + '%';
    document.title = 'Live results · ' + (state.seats_declared || 0) + '/' + total + ' declared';

    let headline = 'Awaiting the first declaration';
    if (state.majority_party) {
      headline = nameOf(state.majority_party) + ' win a majority';
    } else if (state.largest_party && (state.seats_declared || 0) > 0) {
      const leader = byCode.get(state.largest_party);
      const short = leader ? majority - (leader.seats || 0) : null;
      headline = nameOf(state.largest_party) + ' lead' + (short !== null && short > 0 ? ' · ' + short + ' short of a majority' : '');
    }
    $('seats-headline').textContent = headline;

    $('parties-note').textContent = state.seats_with_figures
      ? '· votes in ' + formatInt(state.seats_with_figures) + ' seats' : '';
    renderSeatBar(parties, total, nameOf);
    renderTable(state.parties);
  }

  function renderSeatBar(parties, total, nameOf) {
    const container = $('seat-bar-segments');
    const barWidth = container.clientWidth || 1000;
    const seen = new Set();
    parties.filter((p) => (p.seats || 0) > 0).forEach((p) => {
      seen.add(p.party);
      let segment = view.segments.get(p.party);
      if (!segment) {
        segment = el('div', 'seat-bar__segment');
        segment.setAttribute('data-testid', 'seat-bar-segment');
        segment.setAttribute('data-party', p.party);
        segment.appendChild(el('span', 'seat-bar__party'));
        segment.appendChild(el('span', 'seat-bar__seats'));
        view.segments.set(p.party, segment);
      }
      const fraction = p.seats / total;
      const colour = partyColour(p.party);
      segment.setAttribute('data-seats', String(p.seats));
      segment.title = nameOf(p.party) + ': ' + p.seats + ' seats';
      segment.style.width = (100 * fraction) + '%';
      segment.style.backgroundColor = colour;
      segment.style.color = textColourOn(colour);
      // Labels only where they fit: code and seats on wide segments, seats on middling ones.
      const pixels = fraction * barWidth;
      segment.firstChild.textContent = pixels >= 34 + 13 * p.party.length ? p.party : '';
      segment.lastChild.textContent = pixels >= 16 * String(p.seats).length + 6 ? String(p.seats) : '';
      container.appendChild(segment); // re-appending keeps the DOM in seat order
    });
    view.segments.forEach((segment, code) => {
      if (!seen.has(code)) {
        segment.remove();
        view.segments.delete(code);
      }
    });
  }

  function cell(field, text, value, className) {
    const td = el('td', className || 'num', text);
    td.setAttribute('data-field', field);
    if (value !== undefined && value !== null) td.setAttribute('data-value', String(value));
    return td;
  }

  function renderTable(parties) {
    const body = $('parties-body');
    const rows = tableRows(parties);
    if (!rows.length) {
      const empty = el('tr', 'parties__empty');
      const td = el('td', null, 'No seats declared yet');
      td.colSpan = 8;
      empty.appendChild(td);
      body.replaceChildren(empty);
      return;
    }
    body.replaceChildren(...rows.map((p) => {
      const tr = el('tr', 'parties__row' + (p.others ? ' parties__row--others' : ''));
      tr.setAttribute('data-testid', 'party-row');
      tr.setAttribute('data-party', p.party);
      const name = el('td', 'parties__party');
      name.setAttribute('data-field', 'party');
      const label = el('div', 'parties__label');
      const swatch = el('span', 'swatch');
      swatch.style.backgroundColor = p.others ? OTHER_COLOUR : partyColour(p.party);
      label.appendChild(swatch);
      label.appendChild(el('span', 'parties__name', p.others ? 'Others' : partyShortName(p.party, p.name)));
      name.appendChild(label);
      name.title = p.name || p.party;
      const change = cell('change', formatSigned(p.seats_change), p.seats_change);
      change.classList.add(p.seats_change > 0 ? 'up' : p.seats_change < 0 ? 'down' : 'level');
      const shareChange = cell('share_change', formatShareChange(p.share_change), p.share_change);
      shareChange.classList.add(p.share_change > 0 ? 'up' : p.share_change < 0 ? 'down' : 'level');
      tr.append(
        name,
        cell('seats', formatInt(p.seats), p.seats, 'num num--seats'),
        change,
        cell('gains', formatInt(p.gains), p.gains),
        cell('losses', formatInt(p.losses), p.losses),
        cell('votes', formatInt(p.votes), p.votes, 'num num--votes'),
        cell('share', formatShare(p.share), p.share),
        shareChange,
      );
      return tr;
    }));
  }

  // ---- projection strip and its history chart ----

  function renderProjection() {
    const strip = $('projection');
    const wasHidden = strip.hidden;
    const current = model.projection;
    strip.hidden = !current;
    // The party table tightens its rows to leave the board the height the strip takes.
    $('stage').classList.toggle('stage--projection', !strip.hidden);
    if (!current) return wasHidden !== strip.hidden;
    const projection = current.projection;
    $('projection-basis').textContent = projectionBasis(projection, current.totalSeats);
    $('projection-as-of').textContent = projection.as_of ? 'as of ' + formatClock(projection.as_of) : '';
    const rows = projectionRows(projection);
    const items = rows.map((p) => {
      const colour = p.others ? OTHER_COLOUR : partyColour(p.party);
      const li = el('li', 'projection__party' + (p.others ? ' projection__party--others' : ''));
      li.setAttribute('data-testid', 'projection-party');
      li.setAttribute('data-party', p.party);
      li.style.setProperty('--party', colour);
      li.title = p.others ? 'Others' : partyShortName(p.party, p.party) + ': ' + formatInt(p.seats) + ' projected' +
        (isNumber(p.low) && isNumber(p.high) ? ' (' + formatInt(p.low) + ' to ' + formatInt(p.high) + ')' : '');
      li.appendChild(el('span', 'projection__name', p.party));
      const seats = el('span', 'projection__seats', formatInt(p.seats));
      seats.setAttribute('data-field', 'seats');
      seats.setAttribute('data-value', String(p.seats));
      li.appendChild(seats);
      const range = el('span', 'projection__range',
        isNumber(p.low) && isNumber(p.high) ? formatInt(p.low) + '–' + formatInt(p.high) : '');
      range.setAttribute('data-field', 'range');
      li.appendChild(range);
      const poll = el('span', 'projection__poll');
      poll.setAttribute('data-field', 'exit-poll');
      poll.appendChild(el('span', 'projection__poll-label', 'Exit poll '));
      // formatInt shows "–" where the exit poll did not name the party.
      poll.appendChild(el('span', 'projection__poll-seats', formatInt(p.exit_poll)));
      if (isNumber(p.exit_poll)) poll.setAttribute('data-value', String(p.exit_poll));
      li.appendChild(poll);
      return li;
    });
    if (!items.length) items.push(el('li', 'projection__empty', 'No projected seats yet'));
    $('projection-parties').replaceChildren(...items);
    renderProjectionChart(projection);
    return wasHidden !== strip.hidden;
  }

  function renderProjectionChart(projection) {
    const history = model.projectionHistory;
    const polls = {};
    projectedParties(projection).forEach((p) => {
      if (isNumber(p.exit_poll)) polls[p.party] = p.exit_poll;
    });
    const layout = layoutProjectionChart(history, polls, CHART_BOX);
    const box = layout.box;
    const right = box.width - box.right;
    const chart = svg('svg', {
      class: 'chart',
      viewBox: '0 0 ' + box.width + ' ' + box.height,
      width: String(box.width),
      height: String(box.height),
      role: 'img',
      'aria-label': 'Projected seats through the night' +
        (layout.lines.length ? ': ' + layout.lines.map((l) => l.party + ' ' + formatInt(l.seats)).join(', ') : '') +
        (layout.exitPolls.length ? '; dashed lines: the exit poll' : ''),
      'data-testid': 'projection-chart',
      'data-points': String(history.length),
    });
    layout.yTicks.forEach((tick) => {
      chart.appendChild(svg('line', { class: 'chart__grid', x1: box.left, x2: right, y1: tick.y.toFixed(1), y2: tick.y.toFixed(1) }));
      const label = svg('text', { class: 'chart__label', x: box.left - 5, y: (tick.y + 4).toFixed(1), 'text-anchor': 'end' });
      label.textContent = formatInt(tick.seats);
      chart.appendChild(label);
    });
    layout.xTicks.forEach((tick, index) => {
      const anchor = layout.xTicks.length > 1 && index === layout.xTicks.length - 1 && tick.x > right - 20 ? 'end'
        : index === 0 && tick.x < box.left + 20 ? 'start' : 'middle';
      const label = svg('text', { class: 'chart__label', x: tick.x.toFixed(1), y: box.height - 4, 'text-anchor': anchor });
      label.textContent = formatClock(new Date(tick.at).toISOString());
      chart.appendChild(label);
    });
    layout.exitPolls.forEach((poll) => {
      const line = svg('line', {
        class: 'chart__exit-poll', x1: box.left, x2: right, y1: poll.y.toFixed(1), y2: poll.y.toFixed(1),
        stroke: partyColour(poll.party), 'data-testid': 'projection-exit-poll', 'data-party': poll.party,
        'data-seats': String(poll.seats),
      });
      const title = svg('title');
      title.textContent = 'Exit poll: ' + poll.party + ' ' + formatInt(poll.seats);
      line.appendChild(title);
      chart.appendChild(line);
    });
    // Smaller parties first, so the leaders' lines are drawn on top.
    layout.lines.slice().reverse().forEach((line) => {
      const colour = partyColour(line.party);
      chart.appendChild(svg('path', {
        class: 'chart__line', d: line.d, stroke: colour, 'data-testid': 'projection-line',
        'data-party': line.party, 'data-points': String(line.points.length),
      }));
      const last = line.points[line.points.length - 1];
      if (last) chart.appendChild(svg('circle', { class: 'chart__dot', cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 3.5, fill: colour }));
    });
    $('projection-chart').replaceChildren(chart);
  }

  // ---- ticker ----

  function renderTicker() {
    // By declaration time: a seat whose message arrives late takes its place, not the top.
    const latest = latestSeats(model.seats.values(), TICKER_LENGTH);
    const items = latest.map((seat) => {
      const colour = seat.winning_party ? partyColour(seat.winning_party) : UNDECLARED_COLOUR;
      const li = el('li', 'ticker__item' + (seat.gain ? ' ticker__item--gain' : ''));
      li.setAttribute('data-testid', 'ticker-item');
      li.setAttribute('data-ons', seat.constituency_id);
      if (seat.winning_party) li.setAttribute('data-party', seat.winning_party);
      li.style.setProperty('--party', colour);
      li.style.setProperty('--party-text', textColourOn(colour));
      li.appendChild(el('time', 'ticker__time', formatClock(seat.declared_at)));
      const main = el('div', 'ticker__main');
      main.appendChild(el('span', 'ticker__seat', seat.constituency_name));
      const who = el('span', 'ticker__winner');
      if (seat.winner) {
        who.appendChild(el('span', 'ticker__name', seat.winner.name));
        who.appendChild(el('span', 'ticker__party', ' · ' + partyShortName(seat.winner.party, seat.winner.party_name)));
      }
      if (typeof seat.majority === 'number') who.appendChild(el('span', 'ticker__majority', ' · maj ' + formatInt(seat.majority)));
      main.appendChild(who);
      li.appendChild(main);
      const tags = el('div', 'ticker__tags');
      tags.appendChild(el('span', 'ticker__label', resultLabel(seat)));
      if (seat.recount) tags.appendChild(el('span', 'tag tag--recount', 'Recount'));
      if (seat.figures_pending) tags.appendChild(el('span', 'tag', 'Figures to follow'));
      li.appendChild(tags);
      return li;
    });
    if (!items.length) items.push(el('li', 'ticker__empty', 'No declarations yet'));
    const ticker = $('ticker');
    ticker.replaceChildren(...items);
    // Show only whole items: a half-cut line reads as a glitch on a wall screen.
    if (!document.documentElement.classList.contains('fit')) return;
    const bottom = ticker.getBoundingClientRect().bottom;
    items.forEach((item) => {
      item.hidden = item.getBoundingClientRect().bottom > bottom + 1;
    });
  }

  // ---- alerts ----

  function renderAlerts() {
    const newest = newestAlerts(model.alerts.values(), ALERTS_SHOWN);
    const banners = newest.map((alert) => {
      const banner = el('article', 'alert alert--' + (alert.priority || 'normal'));
      banner.setAttribute('data-testid', 'alert-banner');
      banner.setAttribute('data-priority', alert.priority || 'normal');
      banner.setAttribute('data-alert-id', alert.alert_id);
      const meta = el('div', 'alert__meta');
      meta.appendChild(el('span', 'alert__priority', PRIORITY_LABELS[alert.priority] || alert.priority || 'News'));
      meta.appendChild(el('span', 'alert__type', String(alert.type || '').replace(/_/g, ' ')));
      meta.appendChild(el('time', 'alert__time', formatClock(alert.occurred_at)));
      banner.appendChild(meta);
      banner.appendChild(el('p', 'alert__headline', alert.headline));
      if (alert.body) banner.appendChild(el('p', 'alert__body', alert.body));
      return banner;
    });
    const container = $('alerts');
    container.replaceChildren(...banners);
    // Long headlines must not push the ticker off the screen: past the top part of the
    // column only the loudest banner stays, so the latest declarations always show.
    if (!document.documentElement.classList.contains('fit')) return;
    const column = container.parentElement.getBoundingClientRect();
    const limit = column.top + column.height * ALERTS_MAX_SHARE;
    let overflowing = false;
    banners.forEach((banner, index) => {
      overflowing = overflowing || (index > 0 && banner.getBoundingClientRect().bottom > limit);
      banner.hidden = overflowing;
    });
  }

  /** The REHEARSAL banner, shown while anything on the page is a rehearsal's; true when it
   * came or went. */
  function renderRehearsal() {
    const shown = showsRehearsal(
      model.state, Array.from(model.seats.values()), Array.from(model.alerts.values()));
    const banner = $('rehearsal');
    if (banner.hidden === !shown) return false;
    banner.hidden = !shown;
    document.documentElement.classList.toggle('is-rehearsal', shown);
    $('masthead-kicker').textContent = shown ? 'Rehearsal' : 'Live results';
    return true;
  }

  function render() {
    // First: the banner coming or going moves everything below it, the news column too.
    if ((dirty.state || dirty.seats.size || dirty.alerts) && renderRehearsal()) {
      dirty.alerts = true;
      dirty.ticker = true;
    }
    if (dirty.state) renderState();
    // Before the news column: the strip showing or going takes height from the board.
    if (dirty.projection && renderProjection()) {
      dirty.alerts = true;
      dirty.ticker = true;
    }
    dirty.seats.forEach((id) => {
      const seat = model.seats.get(id);
      if (seat) paintHex(seat);
    });
    if (dirty.state || dirty.seats.size) markLatestHex();
    // Alerts first: their height decides how many ticker lines fit below them.
    if (dirty.alerts) renderAlerts();
    if (dirty.ticker || dirty.alerts) renderTicker();
    dirty.state = false;
    dirty.seats.clear();
    dirty.ticker = false;
    dirty.alerts = false;
    dirty.projection = false;
  }

  // ---- applying data; every path is idempotent, so replays and resyncs are harmless ----

  function applyState(state) {
    if (!state || typeof state !== 'object') return;
    noteProjection(state);
    if (model.state && (state.sequence || 0) < (model.state.sequence || 0)) return; // stale
    model.state = state;
    dirty.state = true;
  }

  /** Every state's projection joins the history, a late one included; the newest is shown. */
  function noteProjection(state) {
    const projection = projectionOf(state);
    if (!projection) return;
    addHistoryPoint(model.projectionHistory, projectionPoint(state), HISTORY_CAP);
    const sequence = isNumber(state.sequence) ? state.sequence : 0;
    if (!model.projection || sequence >= model.projection.sequence) {
      model.projection = { projection: projection, sequence: sequence, totalSeats: state.total_seats || DEFAULT_TOTAL_SEATS };
    }
    dirty.projection = true;
  }

  function applySeat(seat) {
    if (!seat || !seat.constituency_id) return;
    if (!isNewerSeat(seat, model.seats.get(seat.constituency_id))) return;
    model.seats.set(seat.constituency_id, seat);
    dirty.seats.add(seat.constituency_id);
    dirty.ticker = true;
  }

  function applyAlert(alert) {
    if (!alert || !alert.alert_id) return;
    (alert.supersedes || []).forEach((id) => model.alerts.delete(id));
    model.alerts.set(alert.alert_id, alert);
    dirty.alerts = true;
  }

  const handlers = { state: applyState, result: applySeat, alert: applyAlert };

  function onEvent(kind, event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      console.error('Unreadable ' + kind + ' event', err);
      return;
    }
    // An alert's outbox position is the event's id (the stored alert has none): it orders
    // alerts of the same moment, as in /api/alerts.
    if (kind === 'alert' && data && typeof data === 'object' && typeof data.sequence !== 'number') {
      const sequence = Number(event.lastEventId);
      if (event.lastEventId && isFinite(sequence)) data.sequence = sequence;
    }
    if (!model.ready) {
      model.pending.push([kind, data]); // applied after the snapshot they may postdate
      return;
    }
    handlers[kind](data);
    scheduleRender();
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) throw new Error(path + ' answered ' + response.status);
    return response.json();
  }

  async function loadSnapshot() {
    const [state, seats, alerts] = await Promise.all([getJSON('/api/state'), getJSON('/api/seats'), getJSON(ALERTS_PATH)]);
    applyState(state);
    Object.keys(seats || {}).forEach((id) => applySeat(seats[id]));
    (alerts || []).forEach(applyAlert);
    dirty.state = true;
    dirty.ticker = true;
    dirty.alerts = true;
    dirty.projection = true;
    model.ready = true;
    model.pending.splice(0).forEach(([kind, data]) => handlers[kind](data));
    render();
  }

  async function loadSnapshotUntilDone() {
    for (;;) {
      try {
        await loadSnapshot();
        return;
      } catch (err) {
        console.warn('Snapshot failed, retrying', err);
        setConnection('error', 'Waiting for results service');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  function connect() {
    const source = new EventSource(EVENTS_PATH);
    view.source = source;
    Object.keys(handlers).forEach((kind) => source.addEventListener(kind, (event) => onEvent(kind, event)));
    source.addEventListener('open', () => {
      setConnection('live', 'Live');
      if (view.hadError) {
        view.hadError = false;
        // Events may have been missed while disconnected: merge a fresh snapshot.
        loadSnapshotUntilDone();
      }
    });
    source.addEventListener('error', () => {
      view.hadError = true;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up after a non-stream answer; keep trying on our own.
        setConnection('error', 'Disconnected · retrying');
        source.close();
        setTimeout(connect, RETRY_MS);
      } else {
        setConnection('reconnecting', 'Reconnecting');
      }
    });
  }

  async function start() {
    renderTicker();
    // Subscribe first, so nothing published while the snapshot loads is lost.
    connect();
    try {
      buildHexmap(await getJSON('/api/hexmap'));
    } catch (err) {
      console.error('Hex map unavailable', err);
      $('hexmap-placeholder').textContent = 'Map unavailable';
    }
    await loadSnapshotUntilDone();
  }

  const DESIGN_WIDTH = 1920;
  const DESIGN_HEIGHT = 1080;
  const FIT_MIN_WIDTH = 960;

  /** Scale the 1920×1080 design to fill a landscape screen, stretching the spare side. */
  function fitStage() {
    const width = window.innerWidth;
    const height = window.innerHeight;
    const stage = $('stage');
    const fit = width >= FIT_MIN_WIDTH && width >= height;
    document.documentElement.classList.toggle('fit', fit);
    if (!fit) {
      stage.style.transform = '';
      stage.style.width = '';
      stage.style.height = '';
      return;
    }
    const scale = Math.min(width / DESIGN_WIDTH, height / DESIGN_HEIGHT);
    stage.style.width = (width / scale) + 'px';
    stage.style.height = (height / scale) + 'px';
    stage.style.transform = 'scale(' + scale + ')';
  }

  fitStage();
  window.addEventListener('resize', () => {
    fitStage();
    // Segment labels and the number of ticker lines that fit depend on the screen's size.
    dirty.state = true;
    dirty.ticker = true;
    scheduleRender();
  });

  root.liveResults = { model: model, helpers: helpers };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(typeof window !== 'undefined' ? window : globalThis);
