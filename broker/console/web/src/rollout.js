// The rollout views: #/rollouts lists the rollouts that hold machines the
// technician may see; #/rollout/ID is one of them: its plan and state, its
// machines counted by step, and each machine's step, wave and detail.
//
// Both only read (an admin changes a rollout with meshctl rollout pause,
// resume or abort). The stream has no event of its own for rollouts; each
// change of one shows as a change of something the stream does report: a
// step moves with its update job (a `queue` event) or with its machine's
// card (which carries the rollout and step it is in), and a rollout that
// pauses opens an alert. The views reload on those, a burst at a time.

import { h, fill, status, table } from './dom.js';
import { time, stamp, span, STEPS, waveName, rolloutHash } from './format.js';
import { isAbort } from './api.js';

// gather is how long a view waits after an event for the rest of its
// burst before it reloads.
const gather = 400;

// maxRows bounds the machine rows drawn: a rollout may hold thousands,
// and a step's count narrows the table to the machines that matter.
const maxRows = 1000;

// rolloutView mounts rollout id into root.
export function rolloutView(root, ctx, id) {
  const v = new Rollout(root, ctx, id);
  v.load();
  return v;
}

// rolloutsView mounts the list of rollouts into root.
export function rolloutsView(root, ctx) {
  const v = new Rollouts(root, ctx);
  v.load();
  return v;
}

// Loaded is a view of one API answer, reloaded when events say it may
// have changed.
class Loaded {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.gen = 0;
    this.abort = null;
    this.timer = 0;
    fill(root, h('p', { class: 'loading' }, 'Loading…'));
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = 0;
    const gen = ++this.gen;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    let data;
    try {
      data = await this.ctx.api(this.url(), { signal: this.abort.signal });
    } catch (err) {
      if (isAbort(err) || gen !== this.gen) return;
      if (err.status === 404) this.notFound(err.message);
      else this.ctx.error(err);
      return;
    }
    if (gen === this.gen) this.render(data);
  }

  // soon reloads a moment after the first of a burst of events: the rest
  // of the burst joins that reload. (Waiting for the burst to end could
  // wait for ever while a large rollout moves.)
  soon() {
    if (!this.timer) this.timer = setTimeout(() => this.load(), gather);
  }

  reload() {
    this.load();
  }

  list(kind) {
    if (kind === 'queue' || kind === 'alerts') this.soon();
  }

  notFound(message) {
    this.ctx.error(message);
  }

  dispose() {
    this.gen++;
    clearTimeout(this.timer);
    if (this.abort) this.abort.abort();
  }
}

class Rollout extends Loaded {
  constructor(root, ctx, id) {
    super(root, ctx);
    this.id = id;
    this.machines = new Set(); // the IDs of the machines shown
    this.only = ''; // the step the machine table is narrowed to
    this.data = null;
  }

  url() {
    return `/api/rollouts/${encodeURIComponent(this.id)}`;
  }

  notFound(message) {
    fill(this.root, h('div', { id: 'not-found', class: 'panel' },
      h('h1', null, 'Rollout not found'),
      h('p', null, message || 'No rollout you can see has this ID.'),
      h('p', null, h('a', { href: '#/rollouts' }, 'All rollouts'))));
  }

  render(ro) {
    this.data = ro;
    const ms = ro.machines || [];
    this.machines = new Set(ms.map((m) => m.machine_id));
    if (this.only && !(ro.counts && ro.counts[this.only])) this.only = '';
    const el = h('div', { id: 'rollout', 'data-id': ro.id },
      h('p', { class: 'crumbs' }, h('a', { href: '#/rollouts' }, 'Rollouts'), ' / ', ro.id),
      h('h1', null, `Rollout ${ro.id} `, h('span', { class: 'muted' }, `to ${ro.version}`)),
      h('div', { class: 'rollout-head' },
        h('section', { class: 'panel', 'aria-labelledby': 'h-rollout-state' },
          h('h2', { id: 'h-rollout-state' }, 'State'),
          h('p', { class: 'state', 'data-rollout': ro.state }, status(ro.state)),
          ro.paused_reason ? h('p', { id: 'rollout-reason' }, ro.paused_reason) : null,
          h('ul', { id: 'rollout-counts', class: 'step-counts', 'aria-label': 'Machines by step' },
            STEPS.map((s) => this.count(s, (ro.counts || {})[s] || 0)))),
        h('section', { class: 'panel', 'aria-labelledby': 'h-rollout-plan' },
          h('h2', { id: 'h-rollout-plan' }, 'Plan'), planFacts(ro),
          this.ctx.me && this.ctx.me.admin ? h('p', { class: 'muted' },
            'Change it with ', h('code', null, `meshctl rollout pause|resume|abort ${ro.id}`), '.') : null)),
      this.machineTable(ms));
    // A reload redraws the page: the step filter that had the focus keeps it.
    const a = document.activeElement;
    const focused = a && a.classList.contains('step-filter') ? a.closest('li').dataset.step : '';
    fill(this.root, el);
    if (focused) {
      const b = el.querySelector(`#rollout-counts li[data-step="${focused}"] button`);
      if (b) b.focus();
    }
  }

  // count is one step's count; a step with machines narrows the table to
  // them, and back.
  count(step, n) {
    const pressed = this.only === step;
    return h('li', { 'data-step': step, class: n ? null : 'zero' },
      n ? h('button', { type: 'button', class: 'step-filter', 'aria-pressed': String(pressed),
        title: pressed ? 'Show every machine' : `Show only the machines ${step}`,
        onclick: () => {
          this.only = pressed ? '' : step;
          this.render(this.data);
        } }, status(step), h('span', { class: 'n' }, String(n)))
        : [status(step), h('span', { class: 'n' }, '0')]);
  }

  machineTable(ms) {
    const shown = ms.filter((m) => !this.only || m.step === this.only)
      .sort((a, b) => a.wave - b.wave || compare(a.machine, b.machine));
    const t = table({ id: 'rollout-machines', class: 'data' }, ['Machine', 'Wave', 'Step', 'From', 'Detail', 'Changed', 'Job']);
    for (const m of shown.slice(0, maxRows)) {
      t.tbody.append(h('tr', { class: 'rollout-machine', 'data-id': m.machine_id },
        h('td', null, h('a', { href: `#/machine/${encodeURIComponent(m.machine_id)}` }, m.machine || m.machine_id)),
        h('td', null, waveName(m.wave)),
        h('td', { class: 'step', 'data-step': m.step }, status(m.step)),
        h('td', null, m.from || ''),
        h('td', { class: 'detail' }, m.detail || ''),
        h('td', null, stamp(time(m.updated_at))),
        h('td', { class: 'mono', title: m.job || '' }, m.job ? m.job.slice(0, 8) : '')));
    }
    const head = this.only ? `Machines ${this.only} (${shown.length} of ${ms.length})` : `Machines (${ms.length})`;
    return h('section', { id: 'rollout-machines-section', 'aria-labelledby': 'h-rollout-machines' },
      h('h2', { id: 'h-rollout-machines' }, head),
      shown.length ? t.table : h('p', { class: 'muted' }, 'No machines you can see.'),
      shown.length > maxRows ? h('p', { class: 'muted' },
        `The first ${maxRows} are shown; a step's count above shows only its machines.`) : null);
  }

  // card reloads when a machine of this rollout, or one that says it is
  // in it, changed.
  card(card) {
    const ref = card.readiness && card.readiness.rollout;
    if (this.machines.has(card.id) || (ref && ref.id === this.id)) this.soon();
  }

  gone(id) {
    if (this.machines.has(id)) this.soon();
  }
}

// planFacts is what the admin asked for when starting the rollout.
function planFacts(ro) {
  const created = time(ro.created_at);
  const pairs = [
    ['Release', ro.version],
    ['Machines of', ro.all ? 'every client' : (ro.clients || []).join(', ')],
    ['Canary wave', `${ro.canary_pct}% of the machines`],
    ['Health window', span(ro.health_window_s)],
    ['At once', `at most ${ro.max_parallel} machines`],
    ['Pauses', `on a canary's failure; in wave 1, ${ro.fail_pct === 0 ? 'at the first failure' : `above ${ro.fail_pct}% failed`}`],
    ['Rollback', ro.rollback ? 'yes: older than the agents' : ''],
    ['Consent', ro.requires_consent ? 'asked at each machine' : ''],
    ['Started', created ? `${stamp(created)} by ${ro.created_by}` : ro.created_by],
    ['Changed', stamp(time(ro.updated_at))],
  ];
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

class Rollouts extends Loaded {
  constructor(root, ctx) {
    super(root, ctx);
    const t = table({ id: 'rollouts', class: 'data list' }, ['Rollout', 'Release', 'State', 'Machines', 'Steps', 'Started by', 'Started']);
    this.tbody = t.tbody;
    fill(root, h('div', { class: 'list-view' }, h('h1', null, 'Rollouts'), t.table));
  }

  url() {
    return '/api/rollouts';
  }

  render(list) {
    list = Array.isArray(list) ? list : [];
    const rows = list.map((ro) => h('tr', { class: 'rollout', 'data-id': ro.id },
      h('td', { class: 'mono' }, h('a', { href: rolloutHash(ro.id) }, ro.id)),
      h('td', null, ro.version),
      h('td', { class: 'rollout-state', 'data-rollout': ro.state, title: ro.paused_reason || '' }, status(ro.state)),
      h('td', null, String(total(ro.counts))),
      h('td', null, stepsText(ro.counts)),
      h('td', null, ro.created_by),
      h('td', null, stamp(time(ro.created_at)))));
    if (!rows.length) {
      rows.push(h('tr', { class: 'empty' }, h('td', { colspan: 7 },
        'No rollouts. An admin starts one with meshctl rollout start VERSION.')));
    }
    fill(this.tbody, rows);
  }

  card(card) {
    if (card.readiness && card.readiness.rollout) this.soon();
  }
}

function total(counts) {
  return Object.values(counts || {}).reduce((a, b) => a + b, 0);
}

// stepsText is the steps that hold machines: "1 failed · 3 waiting".
function stepsText(counts) {
  return STEPS.filter((s) => counts && counts[s]).map((s) => `${counts[s]} ${s}`).join(' · ');
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
