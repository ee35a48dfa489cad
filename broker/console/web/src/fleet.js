// The fleet view (#/fleet): every visible machine, grouped by client, in
// the broker's queue order within each client. Rows are kept across
// reloads and live updates and changed in place, so a `card` event touches
// its own row only and keyboard focus survives.

import { h, fill, setText, status } from './dom.js';
import { reachWord, reachWhen, reachDetail, sessionWords, sessionDetail, osName, agentTitle } from './format.js';
import { isAbort } from './api.js';

export const STATES = ['ready', 'degraded', 'consent-required', 'stale', 'incomplete'];

// Filters outlive the view, so coming back from a machine keeps them.
const filters = { readiness: '', online: '', pending: '', q: '' };

// The machine last opened from the fleet gets focus when the fleet is
// shown again.
let lastOpened = '';

// fleetView mounts the fleet into root.
export function fleetView(root, ctx) {
  const v = new Fleet(root, ctx);
  v.load();
  return v;
}

class Fleet {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.cards = []; // the server's list plus live updates, in order
    this.rows = new Map(); // id → {tr, sig, card}
    this.sections = new Map(); // client → {section, tbody}
    this.gen = 0; // load generation: a stale answer is dropped
    this.abort = null;
    this.firstRender = true;
    this.build(root);
    // Relative times ("3 min ago") age; nothing else in a row does.
    this.ticker = setInterval(() => this.age(), 30000);
  }

  build(root) {
    this.count = h('span', { id: 'fleet-count', role: 'status' });
    this.groups = h('div', { class: 'groups' });
    this.empty = h('p', { class: 'empty', hidden: true }, 'No machines match.');
    this.q = h('input', {
      id: 'filter-q', type: 'search', value: filters.q, autocomplete: 'off', spellcheck: 'false',
      placeholder: 'name, client or OS', 'aria-keyshortcuts': '/',
      oninput: () => { filters.q = this.q.value; this.render(); },
    });
    this.pending = h('input', {
      id: 'filter-pending', type: 'text', value: filters.pending, autocomplete: 'off', spellcheck: 'false',
      placeholder: 'package name',
      oninput: () => this.debouncedLoad(),
      onchange: () => this.filterChanged('pending', this.pending.value.trim()),
    });
    const readiness = select('filter-readiness', filters.readiness,
      [['', 'any'], ...STATES.map((s) => [s, s])], (val) => this.filterChanged('readiness', val));
    const online = select('filter-online', filters.online,
      [['', 'any'], ['true', 'online'], ['false', 'offline']], (val) => this.filterChanged('online', val));
    const bar = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter machines', onsubmit: (e) => e.preventDefault() },
      field('filter-readiness', 'Readiness', readiness),
      field('filter-online', 'Reachability', online),
      field('filter-pending', 'Pending update', this.pending),
      field('filter-q', 'Search', this.q),
      this.count);
    this.el = h('div', { id: 'fleet', onclick: (e) => remember(e) },
      h('h1', { class: 'visually-hidden' }, 'Fleet'), bar, this.empty, this.groups);
    fill(root, this.el);
  }

  // filterChanged applies a server-side filter.
  filterChanged(name, value) {
    if (filters[name] === value) return;
    filters[name] = value;
    this.load();
  }

  debouncedLoad() {
    clearTimeout(this.typing);
    this.typing = setTimeout(() => this.filterChanged('pending', this.pending.value.trim()), 400);
  }

  // load fetches the list with the server-side filters.
  async load() {
    const gen = ++this.gen;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const q = new URLSearchParams();
    if (filters.readiness) q.set('readiness', filters.readiness);
    if (filters.online) q.set('online', filters.online);
    if (filters.pending) q.set('pending_update', filters.pending);
    const qs = q.toString();
    let cards;
    try {
      cards = await this.ctx.api(`/api/machines${qs ? `?${qs}` : ''}`, { signal: this.abort.signal });
    } catch (err) {
      if (!isAbort(err) && gen === this.gen) this.ctx.error(err);
      return;
    }
    if (gen !== this.gen) return;
    this.cards = Array.isArray(cards) ? cards : [];
    this.render();
  }

  reload() {
    this.load();
  }

  // card applies a `card` event: the row changes in place, appears if the
  // machine now passes the filters, or goes if it no longer does.
  card(card) {
    const i = this.cards.findIndex((c) => c.id === card.id);
    const keep = passesServerFilters(card);
    if (i >= 0 && keep) {
      const before = this.cards[i];
      this.cards[i] = card;
      if (card.client === before.client && passesSearch(card) && this.rows.has(card.id)) {
        this.row(card); // the common case: nothing but this row changes
        return;
      }
    } else if (i >= 0) {
      this.cards.splice(i, 1);
    } else if (keep) {
      this.cards.splice(insertionPoint(this.cards, card), 0, card);
    } else {
      return;
    }
    this.render();
  }

  gone(id) {
    const i = this.cards.findIndex((c) => c.id === id);
    if (i < 0) return;
    this.cards.splice(i, 1);
    this.render();
  }

  // render brings the DOM in line with this.cards and the text search,
  // touching only rows whose card changed.
  render() {
    const shown = this.cards.filter(passesSearch);
    const byClient = new Map();
    for (const c of shown) {
      if (!byClient.has(c.client)) byClient.set(c.client, []);
      byClient.get(c.client).push(c);
    }
    const clients = [...byClient.keys()].sort(compareNames);
    const keepRows = new Set(shown.map((c) => c.id));
    for (const [id, row] of this.rows) {
      if (!keepRows.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    for (const [client, s] of this.sections) {
      if (!byClient.has(client)) {
        s.section.remove();
        this.sections.delete(client);
      }
    }
    clients.forEach((client, i) => {
      const s = this.section(client);
      placeAt(this.groups, s.section, i);
      byClient.get(client).forEach((card, j) => placeAt(s.tbody, this.row(card), j));
      setText(s.count, countText(byClient.get(client).length));
    });
    setText(this.count, `${shown.length} machines`);
    this.empty.hidden = shown.length > 0;
    if (this.firstRender && shown.length) {
      this.firstRender = false;
      this.restoreFocus();
    }
  }

  // section returns the client's section, making it if needed.
  section(client) {
    let s = this.sections.get(client);
    if (s) return s;
    const tbody = h('tbody');
    const heading = h('h2', null, client);
    const count = h('span', { class: 'count' });
    const section = h('section', { class: 'client', 'data-client': client, 'aria-label': `Client ${client}` },
      h('div', { class: 'client-head' }, heading, count),
      h('table', { class: 'machines' },
        h('colgroup', null, ['c-name', 'c-ready', 'c-reach', 'c-session', 'c-agent', 'c-updates'].map((c) => h('col', { class: c }))),
        h('thead', null, h('tr', null,
          ['Machine', 'Readiness', 'Reachability', 'Session', 'Agent · rollout', 'Updates'].map((x) => h('th', { scope: 'col' }, x)))),
        tbody));
    s = { section, tbody, count };
    this.sections.set(client, s);
    return s;
  }

  // row returns the card's row, up to date, making it if needed.
  row(card) {
    let row = this.rows.get(card.id);
    if (!row) {
      row = { tr: newRow(), sig: '', card: null };
      this.rows.set(card.id, row);
    }
    if (row.card === card) return row.tr; // rendered from this very object
    const sig = JSON.stringify(card);
    if (row.sig !== sig) {
      fillRow(row.tr, card);
      row.sig = sig;
    }
    row.card = card;
    return row.tr;
  }

  // age refreshes the relative times.
  age() {
    for (const { tr, card } of this.rows.values()) {
      setText(tr.querySelector('td.reach .when'), reachWhen(card.reachability));
    }
  }

  restoreFocus() {
    const row = lastOpened && this.rows.get(lastOpened);
    if (row && (document.activeElement === document.body || !document.activeElement)) {
      row.tr.querySelector('a.machine-link').focus();
    }
  }

  // keydown: arrows and j/k move between machines, "/" goes to search.
  keydown(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    const typing = t instanceof Element && t.closest('input, select, textarea, [contenteditable]');
    if (e.key === '/' && !typing) {
      e.preventDefault();
      this.q.focus();
      this.q.select();
    } else if (e.key === 'Escape' && t === this.q) {
      this.move(+1, e);
    } else if (e.key === 'ArrowDown' && !(t instanceof HTMLSelectElement)) {
      this.move(+1, e);
    } else if ((e.key === 'ArrowUp' && !typing) || (!typing && e.key === 'k')) {
      this.move(-1, e);
    } else if (!typing && e.key === 'j') {
      this.move(+1, e);
    }
  }

  move(delta, e) {
    const links = [...this.el.querySelectorAll('a.machine-link')];
    if (!links.length) return;
    e.preventDefault();
    const i = links.indexOf(document.activeElement);
    const next = i < 0 ? (delta > 0 ? 0 : links.length - 1) : Math.min(Math.max(i + delta, 0), links.length - 1);
    links[next].focus();
  }

  dispose() {
    this.gen++;
    if (this.abort) this.abort.abort();
    clearInterval(this.ticker);
    clearTimeout(this.typing);
  }
}

// remember notes which machine was opened (by click or Enter).
function remember(e) {
  const a = e.target instanceof Element && e.target.closest('a.machine-link');
  if (a) lastOpened = a.closest('tr.machine').dataset.id;
}

function newRow() {
  return h('tr', { class: 'machine' },
    h('td', { class: 'name' }, h('a', { class: 'machine-link' })),
    h('td', { class: 'readiness' }),
    h('td', { class: 'reach' }),
    h('td', { class: 'session' }),
    h('td', { class: 'agent' }),
    h('td', { class: 'updates' }));
}

// fillRow writes card into its row. The link element is kept, so a
// focused row stays focused.
function fillRow(tr, card) {
  const [name, ready, reach, session, agent, updates] = tr.cells;
  tr.dataset.id = card.id;
  tr.dataset.name = card.name;
  const a = name.firstChild;
  a.href = `#/machine/${encodeURIComponent(card.id)}`;
  setText(a, card.name);
  name.title = card.name; // long names are cut short with an ellipsis

  const r = card.readiness || {};
  ready.dataset.state = r.state || '';
  fill(ready, status(r.state || 'unknown'));
  ready.title = (r.reasons || []).join('\n');

  const rc = card.reachability;
  reach.dataset.online = String(!!(rc && rc.online));
  reach.dataset.reason = (rc && !rc.online && rc.offline_reason) || '';
  fill(reach, status(reachWord(rc)), ' ', h('span', { class: 'when' }, reachWhen(rc)));
  reach.title = reachDetail(rc);

  setText(session, sessionWords(card.session));
  session.title = [sessionWords(card.session), sessionDetail(card.session)].filter(Boolean).join('\n');

  fillAgent(agent, r);

  const ups = r.pending_updates || [];
  if (r.updates_unknown && ups.length === 0) {
    // The machine could not tell: never show that as 0.
    setText(updates, 'unknown');
    updates.title = r.updates_unknown;
    return;
  }
  setText(updates, String(ups.length));
  const sec = ups.filter((u) => u.security).length;
  updates.title = sec ? `${sec} security update${sec > 1 ? 's' : ''}` : '';
}

// fillAgent writes the agent's version, "behind" when it is, and its step
// in the rollout it is in: a few text nodes, as the row is one of
// thousands.
function fillAgent(td, r) {
  const ref = r.rollout;
  td.dataset.behind = String(!!r.agent_behind);
  fill(td, r.agent_version || '',
    r.agent_behind ? h('span', { class: 'behind' }, 'behind') : null,
    ref ? h('span', { class: 'step', 'data-step': ref.step }, ref.step) : null);
  td.title = agentTitle(r);
}

// placeAt puts child at position i of parent, moving it only if it is
// elsewhere: moving a node blurs focus inside it.
function placeAt(parent, child, i) {
  const at = parent.children[i];
  if (at !== child) parent.insertBefore(child, at || null);
}

function countText(n) {
  return n === 1 ? '1 machine' : `${n} machines`;
}

// passesServerFilters mirrors the broker's filters (readiness.Match) for
// cards that arrive by event.
function passesServerFilters(card) {
  const r = card.readiness || {};
  if (filters.readiness && r.state !== filters.readiness) return false;
  if (filters.online && String(!!(card.reachability && card.reachability.online)) !== filters.online) return false;
  if (filters.pending) {
    const want = filters.pending.toLowerCase();
    return (r.pending_updates || []).some((u) => (u.id || '').toLowerCase() === want);
  }
  return true;
}

// passesSearch is the client-side text search over name, client and OS.
function passesSearch(card) {
  const q = filters.q.trim().toLowerCase();
  if (!q) return true;
  const os = osName(card.readiness && card.readiness.os);
  return [card.name, card.client, os].some((s) => (s || '').toLowerCase().includes(q));
}

// insertionPoint finds where a new card goes in the queue order: by
// readiness, then online first, then name (readiness.Sort).
function insertionPoint(cards, card) {
  const i = cards.findIndex((c) => queueCompare(card, c) < 0);
  return i < 0 ? cards.length : i;
}

function queueCompare(a, b) {
  const rank = (c) => {
    const i = STATES.indexOf(c.readiness && c.readiness.state);
    return i < 0 ? STATES.length : i;
  };
  const off = (c) => (c.reachability && c.reachability.online ? 0 : 1);
  return rank(a) - rank(b) || off(a) - off(b) || compareNames(a.name, b.name) || compareNames(a.id, b.id);
}

function compareNames(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

// select makes a <select> with [value, label] options.
function select(id, value, options, onchange) {
  const el = h('select', { id, onchange: () => onchange(el.value) },
    options.map(([v, label]) => h('option', { value: v }, label)));
  el.value = value;
  return el;
}

// field labels a control.
function field(id, label, control) {
  return h('span', { class: 'field' }, h('label', { for: id }, label), control);
}
