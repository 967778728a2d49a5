/* The newsroom desk: held alerts and calls, live from /api/desk/events with the person's token. */
'use strict';

(function (root) {
  // sessionStorage, never a URL or a cookie: the token stays in this tab and is sent only as
  // an Authorization header, which no log of a proxy or the worker prints.
  const TOKEN_KEY = 'electionDeskToken';
  const QUEUE_PATH = '/api/desk/queue';
  const EVENTS_PATH = '/api/desk/events';
  const HEADLINE_MAX = 140; // as the alert contract (schemas/alert.py), in characters
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // The worker sends a heartbeat every ~15 s: three missed means the stream is dead even if
  // the connection has not said so (a proxy or a laptop's sleep can leave it hanging).
  const STALE_MS = 45000;
  const TICK_MS = 250;
  const TIME_ZONE = 'Europe/London'; // the night's clock, wherever the editor's laptop is

  const PRIORITY_LABELS = { flash: 'Flash', high: 'High', normal: 'News', low: 'Note' };
  const ACTION_LABELS = {
    approve: 'approved',
    edit: 'edited and sent',
    kill: 'killed',
    auto_release: 'auto-released',
    override: 'overrode a call',
  };
  const REASON_LABELS = {
    policy: 'Held by policy',
    seat_not_called: "The seat's call is held",
    amends_held: 'Amends an alert still held',
    amends_killed: 'Amends an alert the desk killed',
  };

  // ---- pure helpers (also loaded by the Node unit test) ----

  /**
   * An incremental parser of the text/event-stream format (the HTML standard's rules): feed it
   * text as it arrives, in chunks cut anywhere. `onEvent({type, data, id})` for each event with
   * data; `onComment(text)` for each line starting with ':' (the worker's heartbeats).
   */
  function createEventStreamParser(onEvent, onComment) {
    let buffer = '';
    let data = [];
    let type = '';
    let lastId = '';
    let retry = null;

    function dispatch() {
      if (data.length) {
        onEvent({ type: type || 'message', data: data.join('\n'), id: lastId });
      }
      data = [];
      type = '';
    }

    function line(text) {
      if (text === '') {
        dispatch();
        return;
      }
      if (text[0] === ':') {
        if (onComment) onComment(text.slice(1).replace(/^ /, ''));
        return;
      }
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && value.indexOf('\0') < 0) lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
    }

    return {
      feed(chunk) {
        buffer += chunk;
        for (;;) {
          const end = /\r\n|\r|\n/.exec(buffer);
          if (!end) return;
          // A CR at the very end may be the first half of a CRLF cut by the chunking.
          if (end[0] === '\r' && end.index === buffer.length - 1) return;
          const text = buffer.slice(0, end.index);
          buffer = buffer.slice(end.index + end[0].length);
          line(text);
        }
      },
      /** The stream ended: an event without its blank line is dropped, as browsers do. */
      end() {
        buffer = '';
        data = [];
        type = '';
      },
      get lastEventId() {
        return lastId;
      },
      get retry() {
        return retry;
      },
    };
  }

  /** "4:05", "1:02:03"; never negative. */
  function formatDuration(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    const ss = String(seconds).padStart(2, '0');
    if (hours) return hours + ':' + String(minutes).padStart(2, '0') + ':' + ss;
    return minutes + ':' + ss;
  }

  const clockFormat = new Intl.DateTimeFormat('en-GB', {
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZone: TIME_ZONE,
  });

  /** An ISO time as the night's clock, "23:14:05"; '' for one that is missing or bad. */
  function formatClock(iso) {
    const at = Date.parse(iso);
    return Number.isFinite(at) ? clockFormat.format(at) : '';
  }

  /** What a held alert's countdown says, and the seconds left (null: no auto-release). */
  function countdown(releaseAt, nowMs) {
    if (releaseAt === null || releaseAt === undefined) {
      return { text: 'Waits for an editor', seconds: null };
    }
    const at = Date.parse(releaseAt);
    if (!Number.isFinite(at)) return { text: 'Waits for an editor', seconds: null };
    const left = at - nowMs;
    if (left <= 0) return { text: 'Auto-release due now', seconds: 0 };
    return { text: 'Auto-release in ' + formatDuration(left), seconds: Math.ceil(left / 1000) };
  }

  /** "held 3 min", "held 40 s": how long an alert has waited. */
  function heldFor(heldAt, nowMs) {
    const at = Date.parse(heldAt);
    if (!Number.isFinite(at)) return '';
    const seconds = Math.max(0, Math.floor((nowMs - at) / 1000));
    if (seconds < 60) return 'held ' + seconds + ' s';
    if (seconds < 3600) return 'held ' + Math.floor(seconds / 60) + ' min';
    return 'held ' + formatDuration(seconds * 1000);
  }

  function typeLabel(type) {
    const text = String(type || '').replace(/_/g, ' ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function priorityLabel(priority) {
    return PRIORITY_LABELS[priority] || String(priority || '');
  }

  function actionLabel(action) {
    return ACTION_LABELS[action] || String(action || '');
  }

  function reasonText(held) {
    const text = String(held.reason_text || REASON_LABELS[held.reason] || held.reason || 'Held');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /** Characters as the worker counts them (code points), not UTF-16 units. */
  function charCount(text) {
    return Array.from(text).length;
  }

  /**
   * The body of an edited approval: only what changed, the headline trimmed. `{error}` when
   * there is nothing to send or the headline will not do.
   */
  function editPayload(alert, headline, body) {
    const newHeadline = headline.trim();
    if (!newHeadline) return { error: 'The headline cannot be empty' };
    if (charCount(newHeadline) > HEADLINE_MAX) {
      return { error: 'The headline is ' + charCount(newHeadline) + ' characters: at most ' + HEADLINE_MAX };
    }
    const payload = {};
    if (newHeadline !== alert.headline) payload.headline = newHeadline;
    if (body !== alert.body) payload.body = body;
    if (!Object.keys(payload).length) return { error: 'Nothing changed: Approve sends it as made' };
    return { payload: payload };
  }

  /** What to tell the editor about a refused request, from its status and JSON answer. */
  function errorText(status, answer) {
    const body = answer && typeof answer === 'object' ? answer : {};
    if (status === 409 && body.error === 'already_decided') {
      const decision = body.decision || {};
      const when = formatClock(decision.at);
      return 'Already decided: ' + actionLabel(decision.action) + ' by ' + (decision.by || 'someone') +
        (when ? ' at ' + when : '');
    }
    if (status === 404 && body.error === 'not_held') {
      return 'No longer on the desk: someone decided it, or it was released';
    }
    let text = typeof body.error === 'string' && body.error ? body.error : 'The desk answered ' + status;
    if (typeof body.detail === 'string' && body.detail) text += ': ' + body.detail;
    return text;
  }

  /** A conflict as a table: one column per source, one row per party, most votes first. */
  function conflictRows(conflict) {
    const sources = Array.isArray(conflict.sources) ? conflict.sources : [];
    const best = new Map();
    sources.forEach((s) => Object.keys(s.votes || {}).forEach((party) => {
      best.set(party, Math.max(best.get(party) || 0, Number(s.votes[party]) || 0));
    }));
    const parties = Array.from(best.keys()).sort((a, b) => best.get(b) - best.get(a) || (a < b ? -1 : 1));
    return parties.map((party) => {
      const votes = sources.map((s) => (s.votes && party in s.votes ? s.votes[party] : null));
      const shown = votes.filter((v) => v !== null);
      return { party: party, votes: votes, differs: shown.length !== votes.length || new Set(shown).size > 1 };
    });
  }

  /** Jittered exponential backoff: the wait before reconnect attempt `attempt` (0 first). */
  function backoffMs(attempt, random) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, attempt));
    return Math.round(ceiling / 2 + (ceiling / 2) * random);
  }

  const helpers = {
    createEventStreamParser, formatDuration, formatClock, countdown, heldFor, typeLabel,
    priorityLabel, actionLabel, reasonText, charCount, editPayload, errorText, conflictRows,
    backoffMs, HEADLINE_MAX,
  };

  if (typeof module === 'object' && module.exports) module.exports = helpers;
  if (typeof document === 'undefined') return;

  // ---- the page ----

  const $ = (id) => document.getElementById(id);

  const model = {
    token: null,
    state: null, // the last desk state shown
    clockOffsetMs: 0, // the worker's clock minus this browser's
    session: 0, // bumped on every sign-in and sign-out: late answers of an old one are ignored
    stream: null, // the open event stream's AbortController
    attempt: 0, // reconnect attempts since the last good event
    lastSeen: 0,
    reconnectTimer: null,
    cards: new Map(), // alert_id -> its card in the list
    busyCalls: new Set(), // ONS ids whose let-go is in flight
    events: 0, // desk events received (the tests wait on it)
  };

  function serverNow() {
    return Date.now() + model.clockOffsetMs;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function field(card, name) {
    return card.querySelector('[data-field="' + name + '"]');
  }

  function setConnection(status, text) {
    const box = $('connection');
    box.dataset.status = status;
    $('connection-text').textContent = text;
  }

  function showNotice(text) {
    const notice = $('notice');
    notice.textContent = text;
    notice.hidden = !text;
  }

  // ---- signing in and out ----

  function showSignIn(message, keepWatching) {
    $('sign-in').hidden = false;
    $('sign-in-message').textContent = message || '';
    $('sign-in-message').hidden = !message;
    $('sign-in-cancel').hidden = !keepWatching;
    $('token-input').focus();
  }

  function hideSignIn() {
    $('sign-in').hidden = true;
    $('sign-in-message').textContent = '';
  }

  function signIn(token) {
    root.sessionStorage.setItem(TOKEN_KEY, token);
    model.token = token;
    hideSignIn();
    begin();
  }

  /** Forget the token, stop the stream and ask for a token again, saying why. */
  function signOut(message) {
    model.session += 1;
    model.token = null;
    root.sessionStorage.removeItem(TOKEN_KEY);
    stopStream();
    model.state = null;
    model.cards.clear();
    $('held').replaceChildren();
    $('desk').hidden = true;
    $('mode-bar').hidden = true;
    $('sign-out').hidden = true;
    showNotice('');
    setConnection('signed-out', 'Not signed in');
    document.title = 'Desk · election night';
    showSignIn(message, false);
  }

  /** A 401 or 403: the token is unknown (sign in again) or its role too low for this. */
  function refused(status, answer, watching) {
    const said = answer && typeof answer.error === 'string' ? answer.error : '';
    if (status === 401) {
      signOut('Your token was not accepted' + (said ? ' (' + said + ')' : '') + ': sign in again.');
    } else if (watching && model.state) {
      // A viewer pressing an editor's button: the page keeps showing the desk, and offers to
      // sign in as someone who may.
      showSignIn('Not allowed' + (said ? ': ' + said : '') + '. Sign in with an editor\'s token to do that.', true);
    } else {
      signOut('Not allowed' + (said ? ': ' + said : '') + '.');
    }
  }

  function authHeaders(extra) {
    return Object.assign({ Authorization: 'Bearer ' + model.token }, extra || {});
  }

  // ---- the live stream ----

  function stopStream() {
    if (model.stream) model.stream.abort();
    model.stream = null;
    if (model.reconnectTimer) clearTimeout(model.reconnectTimer);
    model.reconnectTimer = null;
  }

  function begin() {
    model.session += 1;
    model.attempt = 0;
    stopStream();
    $('sign-out').hidden = false;
    setConnection('connecting', 'Connecting');
    connect(model.session);
  }

  function scheduleReconnect(session, why) {
    if (session !== model.session) return;
    const wait = backoffMs(model.attempt, Math.random());
    model.attempt += 1;
    setConnection('reconnecting', 'Reconnecting in ' + Math.ceil(wait / 1000) + ' s');
    if (why) console.warn('Desk stream lost, reconnecting', why);
    model.reconnectTimer = setTimeout(() => {
      model.reconnectTimer = null;
      if (session === model.session) connect(session);
    }, wait);
  }

  async function connect(session) {
    const controller = new AbortController();
    model.stream = controller;
    let response;
    try {
      response = await fetch(EVENTS_PATH, {
        headers: authHeaders({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        signal: controller.signal,
      });
    } catch (err) {
      // Unless the page itself stopped this stream (sign-out, a new sign-in).
      if (model.stream === controller) scheduleReconnect(session, err);
      return;
    }
    if (session !== model.session) {
      controller.abort();
      return;
    }
    if (response.status === 401 || response.status === 403) {
      refused(response.status, await response.json().catch(() => null), false);
      return;
    }
    const type = response.headers.get('Content-Type') || '';
    if (!response.ok || !response.body || type.indexOf('text/event-stream') !== 0) {
      controller.abort();
      scheduleReconnect(session, 'answered ' + response.status + ' ' + type);
      return;
    }
    setConnection('live', 'Live');
    model.lastSeen = Date.now();
    const parser = createEventStreamParser(
      (event) => {
        if (event.type !== 'desk') return;
        let state;
        try {
          state = JSON.parse(event.data);
        } catch (err) {
          console.error('Desk event is not JSON', err);
          return;
        }
        model.attempt = 0; // a good event: the next loss starts the backoff afresh
        applyState(state);
      },
      () => {} // a heartbeat: lastSeen below is all it is for
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder('utf-8');
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        model.lastSeen = Date.now();
        if (session !== model.session) return;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      parser.end();
      if (model.stream === controller) scheduleReconnect(session, 'the stream ended');
    } catch (err) {
      // A read error, or the watchdog's abort (which leaves model.stream as it was).
      if (model.stream === controller) scheduleReconnect(session, err);
    }
  }

  /** Abort a stream that has said nothing, not even a heartbeat, for too long. */
  function watchStream() {
    const stream = model.stream;
    if (!stream || model.reconnectTimer || $('connection').dataset.status !== 'live') return;
    if (Date.now() - model.lastSeen > STALE_MS) {
      // The read loop sees the abort and reconnects (model.stream is still this one).
      stream.abort();
    }
  }

  /** After an action: the queue at once, without waiting for the stream (which may lag). */
  async function refresh() {
    const session = model.session;
    try {
      const response = await fetch(QUEUE_PATH, { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
      if (session !== model.session || !response.ok) return;
      const state = await response.json();
      // The stream may have brought a newer one meanwhile; never go back to an older state.
      if (!model.state || Number(state.version) > Number(model.state.version)) applyState(state);
    } catch (err) {
      console.warn('Desk queue refresh failed', err);
    }
  }

  // ---- rendering the desk's state ----

  function applyState(state) {
    if (!state || typeof state !== 'object') return;
    model.events += 1;
    const now = Date.parse(state.now);
    if (Number.isFinite(now)) model.clockOffsetMs = now - Date.now();
    model.state = state;
    render(state);
  }

  function render(state) {
    $('desk').hidden = false;
    renderMode(state.mode);
    renderHeld(Array.isArray(state.held) ? state.held : [], state);
    renderCalls(Array.isArray(state.calls_held) ? state.calls_held : []);
    renderConflicts(Array.isArray(state.conflicts) ? state.conflicts : []);
    renderActions(Array.isArray(state.actions) ? state.actions : []);
    const held = Array.isArray(state.held) ? state.held.length : 0;
    document.title = (held ? '(' + held + ') ' : '') + (state.mode === 'live' ? '' : '[REHEARSAL] ') +
      'Desk · election night';
    tick();
    document.documentElement.dataset.version = String(state.version);
  }

  function renderMode(mode) {
    const bar = $('mode-bar');
    const live = mode === 'live';
    bar.hidden = false;
    bar.dataset.mode = live ? 'live' : 'rehearsal';
    $('mode-word').textContent = live ? 'LIVE' : mode === 'rehearsal' ? 'REHEARSAL' : 'MODE UNKNOWN';
    $('mode-note').textContent = live
      ? 'What you approve goes to the public now'
      : 'A rehearsal: what you approve goes out marked rehearsal, never as news';
    document.documentElement.classList.toggle('is-rehearsal', !live);
  }

  function newCard(alertId) {
    const card = $('held-template').content.firstElementChild.cloneNode(true);
    card.dataset.alertId = alertId;
    card.dataset.mode = 'view';
    card.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      if (button && !button.disabled) onCardButton(card, button.dataset.action);
    });
    field(card, 'edit-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sendEdited(card);
    });
    field(card, 'kill-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sendKill(card);
    });
    field(card, 'edit-headline').addEventListener('input', () => updateChars(card));
    card.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && card.dataset.mode !== 'view' && card.dataset.busy !== 'true') setMode(card, 'view');
    });
    return card;
  }

  function fillCard(card, held) {
    const alert = held.alert || {};
    card.held = held;
    const priority = field(card, 'priority');
    priority.textContent = priorityLabel(alert.priority);
    priority.dataset.priority = String(alert.priority || '');
    card.dataset.priority = String(alert.priority || '');
    card.dataset.type = String(alert.type || '');
    card.dataset.ons = String(alert.constituency_id || '');
    field(card, 'type').textContent = typeLabel(alert.type);
    field(card, 'constituency').textContent = alert.constituency_name
      ? alert.constituency_name + (alert.constituency_id ? ' · ' + alert.constituency_id : '')
      : alert.constituency_id || 'National';
    field(card, 'headline').textContent = alert.headline || '';
    field(card, 'body').textContent = alert.body || '';
    field(card, 'why').textContent = reasonText(held);
    const countdownEl = field(card, 'countdown');
    countdownEl.dataset.releaseAt = held.release_at || '';
    card.dataset.reason = String(held.reason || '');
  }

  function renderHeld(items, state) {
    const list = $('held');
    const seen = new Set();
    items.forEach((held, index) => {
      const id = held && held.alert && held.alert.alert_id;
      if (typeof id !== 'string' || seen.has(id)) return;
      seen.add(id);
      let card = model.cards.get(id);
      if (!card) {
        card = newCard(id);
        model.cards.set(id, card);
      }
      fillCard(card, held);
      // Move a card only when it is out of place: moving one blurs an editor's open form.
      const here = list.children[index];
      if (here !== card) list.insertBefore(card, here || null);
    });
    model.cards.forEach((card, id) => {
      if (seen.has(id)) return;
      model.cards.delete(id);
      card.remove();
      // Someone else decided it (or it was released) while this editor had it open. One with
      // this editor's own decision in flight waits for the answer, which says what happened.
      if (card.dataset.sent !== 'true' && card.dataset.busy !== 'true' && card.dataset.mode !== 'view') {
        showNotice(leftTheDesk(card.held, state));
      }
    });
    $('held-count').textContent = String(seen.size);
    $('held-empty').hidden = seen.size > 0;
  }

  function leftTheDesk(held, state) {
    const alert = (held && held.alert) || {};
    const headline = '“' + (alert.headline || alert.alert_id || '') + '”';
    const actions = Array.isArray(state.actions) ? state.actions : [];
    const done = actions.find((a) => a.alert_id === alert.alert_id);
    if (!done) return headline + ' left the desk before your change was sent';
    return headline + ' left the desk: ' + actionLabel(done.action) + ' by ' + done.by + ' at ' + formatClock(done.at);
  }

  function renderCalls(calls) {
    const list = $('calls');
    list.replaceChildren();
    calls.forEach((call) => {
      const ons = String(call.constituency_id || '');
      const item = el('li', 'call');
      item.dataset.testid = 'held-call';
      item.dataset.ons = ons;
      const head = el('div', 'call__head');
      head.append(el('strong', 'call__seat', call.constituency_name || ons), el('span', 'call__ons', ons));
      const meta = el('p', 'call__meta', 'Held by ' + (call.by || '?') + ' at ' + formatClock(call.at));
      item.append(head, meta);
      if (call.note) item.append(el('p', 'call__note', call.note));
      const button = el('button', 'button', 'Let the call go');
      button.type = 'button';
      button.dataset.testid = 'release-call';
      button.disabled = model.busyCalls.has(ons);
      button.addEventListener('click', () => letCallGo(ons, item));
      const error = el('p', 'error');
      error.dataset.testid = 'call-error';
      error.setAttribute('role', 'alert');
      error.hidden = true;
      item.append(button, error);
      list.append(item);
    });
    $('calls-count').textContent = String(calls.length);
    $('calls-empty').hidden = calls.length > 0;
  }

  function renderConflicts(conflicts) {
    const box = $('conflicts');
    box.replaceChildren();
    conflicts.forEach((conflict) => {
      const sources = Array.isArray(conflict.sources) ? conflict.sources : [];
      const item = el('article', 'conflict');
      item.dataset.testid = 'conflict';
      item.dataset.ons = String(conflict.constituency_id || '');
      const head = el('div', 'conflict__head');
      head.append(
        el('strong', null, conflict.constituency_name || conflict.constituency_id || ''),
        el('span', 'conflict__ons', conflict.constituency_id || ''),
        el('span', 'conflict__counted', 'On air: ' + (conflict.counted || '–'))
      );
      const table = el('table', 'conflict__table');
      const headRow = el('tr');
      headRow.append(el('th', null, 'Party'));
      sources.forEach((s) => {
        const th = el('th', 'num', String(s.source || '?') + (s.revision !== undefined ? ' r' + s.revision : ''));
        th.scope = 'col';
        if (s.source === conflict.counted) th.dataset.counted = 'true';
        headRow.append(th);
      });
      const thead = el('thead');
      thead.append(headRow);
      const tbody = el('tbody');
      const winners = el('tr', 'conflict__winner');
      winners.append(el('th', null, 'Winner'));
      sources.forEach((s) => winners.append(el('td', 'num', s.winner || '–')));
      if (new Set(sources.map((s) => s.winner)).size > 1) winners.dataset.differs = 'true';
      tbody.append(winners);
      if (sources.some((s) => s.majority !== undefined && s.majority !== null)) {
        const majorities = el('tr', 'conflict__majority');
        majorities.append(el('th', null, 'Majority'));
        sources.forEach((s) => majorities.append(
          el('td', 'num', s.majority === undefined || s.majority === null ? '–' : Number(s.majority).toLocaleString('en-GB'))
        ));
        if (new Set(sources.map((s) => s.majority)).size > 1) majorities.dataset.differs = 'true';
        tbody.append(majorities);
      }
      conflictRows(conflict).forEach((row) => {
        const tr = el('tr');
        if (row.differs) tr.dataset.differs = 'true';
        tr.append(el('th', null, row.party));
        row.votes.forEach((v) => tr.append(el('td', 'num', v === null ? '–' : Number(v).toLocaleString('en-GB'))));
        tbody.append(tr);
      });
      // The editor's choice: one source's figures on air, as the desk's correction.
      const choose = el('tr', 'conflict__choose');
      choose.append(el('th', null, 'Choice'));
      sources.forEach((s) => {
        const cell = el('td', 'num');
        const button = el('button', 'button button--quiet', 'Put ' + String(s.source || '?') + ' on air');
        button.type = 'button';
        button.dataset.testid = 'choose-source';
        button.dataset.source = String(s.source || '');
        button.addEventListener('click', () => chooseSource(String(conflict.constituency_id || ''), String(s.source || ''), item));
        cell.append(button);
        choose.append(cell);
      });
      tbody.append(choose);
      table.append(thead, tbody);
      const message = el('p', 'conflict__message');
      message.dataset.testid = 'conflict-message';
      message.hidden = true;
      item.append(head, table, message);
      box.append(item);
    });
    $('conflicts-count').textContent = String(conflicts.length);
    $('conflicts-empty').hidden = conflicts.length > 0;
  }

  function renderActions(actions) {
    const list = $('actions');
    list.replaceChildren();
    actions.forEach((action) => {
      const item = el('li', 'action');
      item.dataset.testid = 'action';
      item.dataset.action = String(action.action || '');
      const line = el('p', 'action__line');
      line.append(
        el('span', 'action__when', formatClock(action.at)),
        el('strong', 'action__who', action.by || '?'),
        el('span', 'action__what', actionLabel(action.action))
      );
      item.append(line);
      if (action.headline) item.append(el('p', 'action__headline', action.headline));
      if (action.action === 'edit' && action.original_headline) {
        item.append(el('p', 'action__was', 'was: ' + action.original_headline));
      }
      const extra = [action.constituency_id, action.detail].filter(Boolean).join(' · ');
      if (extra) item.append(el('p', 'action__detail', extra));
      list.append(item);
    });
    $('actions-empty').hidden = actions.length > 0;
  }

  /** The countdowns and held-for times, once a tick, on the worker's clock. */
  function tick() {
    const now = serverNow();
    model.cards.forEach((card) => {
      const box = field(card, 'countdown');
      const shown = countdown(box.dataset.releaseAt || null, now);
      if (box.textContent !== shown.text) box.textContent = shown.text;
      box.dataset.seconds = shown.seconds === null ? '' : String(shown.seconds);
      box.dataset.due = shown.seconds !== null && shown.seconds <= 60 ? 'soon' : '';
      const heldAt = card.held ? card.held.held_at : null;
      const text = 'since ' + formatClock(heldAt) + ' (' + heldFor(heldAt, now) + ')';
      const at = field(card, 'held-at');
      if (at.textContent !== text) at.textContent = text;
    });
  }

  // ---- the editor's actions ----

  function setMode(card, mode) {
    card.dataset.mode = mode;
    field(card, 'text').hidden = mode === 'edit';
    field(card, 'edit-form').hidden = mode !== 'edit';
    field(card, 'kill-form').hidden = mode !== 'kill';
    field(card, 'buttons').hidden = mode !== 'view';
    if (mode === 'edit') {
      const alert = card.held.alert || {};
      field(card, 'edit-headline').value = alert.headline || '';
      field(card, 'edit-body').value = alert.body || '';
      updateChars(card);
      field(card, 'edit-headline').focus();
    } else if (mode === 'kill') {
      field(card, 'kill-reason').value = '';
      field(card, 'kill-reason').focus();
    }
    setCardError(card, '');
  }

  function updateChars(card) {
    const count = charCount(field(card, 'edit-headline').value.trim());
    const chars = field(card, 'chars');
    chars.textContent = count + '/' + HEADLINE_MAX;
    chars.dataset.over = count > HEADLINE_MAX ? 'true' : 'false';
  }

  function setCardError(card, text) {
    const error = field(card, 'error');
    error.textContent = text;
    error.hidden = !text;
  }

  /** An answer about a card: on the card, or, if the desk's state has taken it away
   * meanwhile, in the notice with its headline. */
  function tell(card, text) {
    if (card.isConnected) {
      setCardError(card, text);
      return;
    }
    const alert = (card.held && card.held.alert) || {};
    showNotice('“' + (alert.headline || card.dataset.alertId) + '”: ' + text);
  }

  function setCardBusy(card, busy) {
    card.dataset.busy = busy ? 'true' : 'false';
    card.querySelectorAll('button').forEach((button) => { button.disabled = busy; });
    card.querySelectorAll('input, textarea').forEach((input) => { input.readOnly = busy; });
  }

  function onCardButton(card, action) {
    if (action === 'approve') decide(card, 'approve', {});
    else if (action === 'edit') setMode(card, 'edit');
    else if (action === 'kill') setMode(card, 'kill');
    else if (action === 'edit-cancel' || action === 'kill-cancel') setMode(card, 'view');
  }

  function sendEdited(card) {
    const checked = editPayload(card.held.alert || {}, field(card, 'edit-headline').value, field(card, 'edit-body').value);
    if (checked.error) {
      setCardError(card, checked.error);
      return;
    }
    decide(card, 'approve', checked.payload);
  }

  function sendKill(card) {
    const reason = field(card, 'kill-reason').value.trim();
    decide(card, 'kill', reason ? { reason: reason } : {});
  }

  /** POST JSON with the token; {status, answer} (answer: the JSON, or null), or throws. */
  async function post(path, body) {
    const response = await fetch(path, {
      method: 'POST',
      headers: authHeaders({ 'Content-Type': 'application/json', Accept: 'application/json' }),
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    const answer = await response.json().catch(() => null);
    return { status: response.status, answer: answer };
  }

  async function decide(card, verb, body) {
    const id = card.dataset.alertId;
    const session = model.session;
    setCardError(card, '');
    setCardBusy(card, true);
    let result;
    try {
      result = await post('/api/desk/alerts/' + encodeURIComponent(id) + '/' + verb, body);
    } catch (err) {
      if (session !== model.session) return;
      setCardBusy(card, false);
      tell(card, 'Could not reach the desk service (' + err.message + '): try again');
      return;
    }
    if (session !== model.session) return;
    if (result.status === 401 || result.status === 403) {
      setCardBusy(card, false);
      refused(result.status, result.answer, true);
      return;
    }
    if (result.status >= 200 && result.status < 300) {
      // Stays disabled until the queue no longer holds it (the stream, or the refresh).
      card.dataset.sent = 'true';
      const decision = (result.answer && result.answer.decision) || verb;
      card.dataset.decision = decision;
      field(card, 'why').textContent = decision === 'kill' ? 'Killed' : 'Sent: going out';
      refresh();
      return;
    }
    setCardBusy(card, false);
    tell(card, errorText(result.status, result.answer));
    if (result.status === 404 || result.status === 409) refresh();
  }

  async function holdCall(event) {
    event.preventDefault();
    const form = $('hold-call');
    const error = $('hold-call-error');
    const ons = $('hold-ons').value.trim().toUpperCase();
    const note = $('hold-note').value.trim();
    error.hidden = true;
    if (!ons) {
      error.textContent = 'Give the seat\'s ONS id, as E14001234';
      error.hidden = false;
      return;
    }
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    const session = model.session;
    try {
      const body = note ? { hold: true, note: note } : { hold: true };
      const result = await post('/api/desk/seats/' + encodeURIComponent(ons) + '/call', body);
      if (session !== model.session) return;
      if (result.status === 401 || result.status === 403) {
        refused(result.status, result.answer, true);
      } else if (result.status >= 200 && result.status < 300) {
        $('hold-ons').value = '';
        $('hold-note').value = '';
        refresh();
      } else {
        error.textContent = result.status === 404 && !(result.answer && result.answer.error)
          ? 'No seat ' + ons
          : errorText(result.status, result.answer);
        error.hidden = false;
      }
    } catch (err) {
      error.textContent = 'Could not reach the desk service: ' + err.message;
      error.hidden = false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function chooseSource(ons, source, item) {
    const session = model.session;
    const buttons = item.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    const say = (text) => {
      const now = document.querySelector('[data-testid=conflict][data-ons="' + CSS.escape(ons) + '"] [data-testid=conflict-message]')
        || item.querySelector('[data-testid=conflict-message]');
      now.textContent = text;
      now.hidden = false;
    };
    try {
      const result = await post('/api/desk/seats/' + encodeURIComponent(ons) + '/choose', { source: source });
      if (session !== model.session) return;
      if (result.status === 401 || result.status === 403) refused(result.status, result.answer, true);
      else if (result.status >= 200 && result.status < 300) {
        const revision = result.answer && result.answer.revision;
        say(source + "'s figures sent as the desk's correction" + (revision ? ' (desk revision ' + revision + ')' : ''));
        refresh();
      } else say(errorText(result.status, result.answer));
    } catch (err) {
      say('Could not reach the desk service: ' + err.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function letCallGo(ons, item) {
    const session = model.session;
    model.busyCalls.add(ons);
    item.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    const error = item.querySelector('[data-testid=call-error]');
    const fail = (text) => {
      // The list may have been drawn again meanwhile: say it on whichever item is there now.
      const now = document.querySelector('[data-testid=held-call][data-ons="' + CSS.escape(ons) + '"] [data-testid=call-error]') || error;
      now.textContent = text;
      now.hidden = false;
    };
    try {
      const result = await post('/api/desk/seats/' + encodeURIComponent(ons) + '/call', { hold: false });
      if (session !== model.session) return;
      if (result.status === 401 || result.status === 403) refused(result.status, result.answer, true);
      else if (result.status >= 200 && result.status < 300) refresh();
      else fail(errorText(result.status, result.answer));
    } catch (err) {
      fail('Could not reach the desk service: ' + err.message);
    } finally {
      model.busyCalls.delete(ons);
      document.querySelectorAll('[data-testid=held-call][data-ons="' + CSS.escape(ons) + '"] button')
        .forEach((b) => { b.disabled = false; });
    }
  }

  // ---- start ----

  function start() {
    $('sign-in-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('token-input');
      const token = input.value.trim();
      input.value = '';
      if (!token) {
        showSignIn('Paste your desk token first.', !!model.state);
        return;
      }
      signIn(token);
    });
    $('sign-in-cancel').addEventListener('click', hideSignIn);
    $('sign-out').addEventListener('click', () => signOut(''));
    $('hold-call').addEventListener('submit', holdCall);
    setInterval(tick, TICK_MS);
    setInterval(watchStream, 5000);
    const token = root.sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      model.token = token;
      begin();
    } else {
      showSignIn('', false);
    }
  }

  root.electionDesk = { model: model, helpers: helpers };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(typeof window !== 'undefined' ? window : globalThis);
