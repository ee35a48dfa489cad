// The alerts, queue and audit views: one table each, reloaded whenever
// the live-update stream says that list changed.

import { h, fill, table } from './dom.js';
import { time, stamp, clock, firstLine } from './format.js';
import { isAbort } from './api.js';

// A list view's description: where its items come from and how a row
// looks.
const LISTS = {
  alerts: {
    title: 'Alerts',
    url: '/api/alerts',
    rowClass: 'alert',
    empty: 'No alerts.',
    heads: ['Status', 'Kind', 'Machine', 'Client', 'Since', 'Cadence', 'Detail'],
    cells: (a) => {
      const resolved = a.resolved ? time(a.resolved) : null;
      const word = a.resolved ? 'resolved' : 'open';
      return [
        h('td', { class: 'status', 'data-status': word }, word, resolved ? ` ${clock(resolved)}` : ''),
        a.kind,
        machineLink(a.id ? a.id.split('/')[0] : '', a.machine),
        a.client,
        stamp(time(a.since)),
        a.cadence,
        a.detail,
      ];
    },
  },
  queue: {
    title: 'Queue',
    url: '/api/queue',
    rowClass: 'job',
    empty: 'The queue is empty.',
    heads: ['State', 'Machine', 'Mode', 'Created by', 'Created', 'Script', 'Exit', 'Result', ''],
    cells: (j, list) => [
      h('td', { class: 'status', 'data-status': j.state }, j.state),
      machineLink(j.machine_id, j.machine),
      j.mode,
      j.created_by,
      h('td', { title: `expires ${stamp(time(j.expires))}` }, stamp(time(j.created_at))),
      h('td', { class: 'mono script', title: j.script || '' }, firstLine(j.script)),
      j.exit_code == null ? '' : String(j.exit_code),
      result(j),
      // Only a queued job can be cancelled; the broker says so otherwise.
      h('td', null, j.state === 'queued' ? h('button', { type: 'button', class: 'cancel',
        'aria-label': `Cancel the job for ${j.machine}`, onclick: () => list.cancel(j) }, 'Cancel') : ''),
    ],
  },
  audit: {
    title: 'Audit log',
    url: '/api/audit?limit=200',
    rowClass: 'audit',
    empty: 'Nothing audited yet.',
    heads: ['Time', 'Event', 'Technician', 'Machine', 'Mode', 'Transport', 'Path', 'Session', 'Detail'],
    cells: (e) => [
      stamp(time(e.at)),
      e.event,
      e.technician,
      e.machine,
      e.mode,
      e.transport,
      e.path,
      h('td', { class: 'mono', title: e.session || '' }, e.session ? e.session.slice(0, 8) : ''),
      e.detail,
    ],
  },
};

// listView mounts the list named kind ("alerts", "queue" or "audit").
export function listView(root, ctx, kind) {
  const v = new List(root, ctx, kind);
  v.load();
  return v;
}

class List {
  constructor(root, ctx, kind) {
    this.ctx = ctx;
    this.kind = kind;
    this.spec = LISTS[kind];
    this.gen = 0;
    this.abort = null;
    const t = table({ id: kind, class: 'data list' }, this.spec.heads);
    this.tbody = t.tbody;
    this.tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: this.spec.heads.length }, 'Loading…')));
    fill(root, h('div', { class: 'list-view' }, h('h1', null, this.spec.title), t.table));
  }

  async load() {
    const gen = ++this.gen;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    let items;
    try {
      items = await this.ctx.api(this.spec.url, { signal: this.abort.signal });
    } catch (err) {
      if (!isAbort(err) && gen === this.gen) this.ctx.error(err);
      return;
    }
    if (gen !== this.gen) return;
    this.render(Array.isArray(items) ? items : []);
  }

  render(items) {
    const rows = items.map((it) => h('tr', { class: this.spec.rowClass, 'data-id': it.id != null ? it.id : it.seq },
      this.spec.cells(it, this).map(cell)));
    if (!rows.length) rows.push(h('tr', { class: 'empty' }, h('td', { colspan: this.spec.heads.length }, this.spec.empty)));
    fill(this.tbody, rows);
  }

  reload() {
    this.load();
  }

  // cancel cancels a queued job; the stream's queue event redraws it.
  async cancel(j) {
    try {
      await this.ctx.api(`/api/queue/${encodeURIComponent(j.id)}/cancel`, { method: 'POST' });
    } catch (err) {
      this.ctx.error(err);
    }
    this.load();
  }

  list(kind) {
    if (kind === this.kind) this.load();
  }

  dispose() {
    this.gen++;
    if (this.abort) this.abort.abort();
  }
}

// cell wraps a value in a td unless it is one already.
function cell(v) {
  if (v instanceof HTMLTableCellElement) return v;
  return h('td', null, v == null ? '' : v);
}

function machineLink(id, label) {
  if (!id) return label || '';
  return h('a', { href: `#/machine/${encodeURIComponent(id)}` }, label || id);
}

// result is a finished job's error, warning or output.
function result(j) {
  const parts = [];
  if (j.error) parts.push(h('span', { class: 'err' }, j.error));
  if (j.warning) parts.push(h('span', { class: 'warn' }, j.warning));
  if (j.output) parts.push(h('details', null, h('summary', null, 'output'), h('pre', null, j.output)));
  return h('td', { class: 'result' }, parts);
}
