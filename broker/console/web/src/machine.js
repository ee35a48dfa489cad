// The machine page (#/machine/ID): the three layers of one machine's card,
// its full stored state (the latest snapshot and the check-in history),
// and the controls that open a live session.

import { h, fill, setText, status, table } from './dom.js';
import {
  time, clock, stamp, ago, span, reachWord, reachWhen, returnedWords, sessionWords, sessionDetail, osName, waveName, rolloutHash,
  updateWords,
} from './format.js';
import { isAbort } from './api.js';
import { noteConnectClick } from './timing.js';
import { warm, releaseSoon } from './warm.js';
import { prepare, discardSoon } from './spareterm.js';

export const MODES = ['read-only', 'interactive', 'elevated'];

// machineView mounts the page for machine id into root.
export function machineView(root, ctx, id) {
  const v = new Machine(root, ctx, id);
  v.load();
  return v;
}

class Machine {
  constructor(root, ctx, id) {
    this.root = root;
    this.ctx = ctx;
    this.id = id;
    this.gen = 0;
    this.abort = null;
    this.data = null; // the full card last loaded, updated by events
    this.built = false;
    fill(root, h('p', { class: 'loading' }, 'Loading…'));
  }

  async load() {
    const gen = ++this.gen;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    let card;
    try {
      card = await this.ctx.api(`/api/machines/${encodeURIComponent(this.id)}`, { signal: this.abort.signal });
    } catch (err) {
      if (isAbort(err) || gen !== this.gen) return;
      if (err.status === 404) this.notFound(err.message);
      else this.ctx.error(err);
      return;
    }
    if (gen !== this.gen) return;
    this.render(card);
  }

  reload() {
    this.load();
  }

  notFound(message) {
    this.built = false;
    fill(this.root, h('div', { id: 'not-found', class: 'panel' },
      h('h1', null, 'Machine not found'),
      h('p', null, message || 'No visible machine has this ID.'),
      h('p', null, h('a', { href: '#/fleet' }, 'Back to the fleet'))));
  }

  // render draws the whole page from a full card (with snapshot and
  // history). The connect controls are made once, so a chosen mode
  // survives reloads.
  render(card) {
    if (!this.built) this.build();
    this.data = card;
    this.seq = card.readiness && card.readiness.check_in_seq;
    setText(this.title, card.name);
    setText(this.client, card.client);
    this.layers(card);
    fill(this.snapshot, snapshotSection(card.snapshot, card.readiness));
    fill(this.history, historySection(card.history));
  }

  build() {
    this.title = h('span', { class: 'name' });
    this.client = h('span', { class: 'client-name' });
    this.readiness = h('section', { id: 'machine-readiness', class: 'panel', 'aria-labelledby': 'h-readiness' });
    this.reach = h('section', { id: 'machine-reach', class: 'panel', 'aria-labelledby': 'h-reach' });
    this.sessionInfo = h('div', { class: 'session-info' });
    this.watch = h('div', { class: 'watch-list' });
    this.session = h('section', { id: 'machine-session', class: 'panel', 'aria-labelledby': 'h-session' },
      h('h2', { id: 'h-session' }, 'Session'), this.sessionInfo, this.connectControls(), this.watch);
    this.snapshot = h('section', { id: 'machine-snapshot', 'aria-labelledby': 'h-snapshot' });
    this.history = h('section', { id: 'machine-history', 'aria-labelledby': 'h-history' });
    const el = h('div', { id: 'machine', 'data-id': this.id },
      h('p', { class: 'crumbs' }, h('a', { href: '#/fleet' }, 'Fleet'), ' / ', this.client),
      h('h1', null, this.title),
      h('div', { class: 'layers' }, this.readiness, this.reach, this.session),
      this.snapshot, this.history);
    fill(this.root, el);
    this.built = true;
  }

  // connectControls is the mode picker and the Connect button.
  connectControls() {
    const allowed = MODES.filter((m) => (this.ctx.me.modes || []).includes(m));
    this.mode = h('select', { id: 'connect-mode' }, allowed.map((m) => h('option', { value: m }, m)));
    this.mode.value = allowed.includes('read-only') ? 'read-only' : allowed[0] || '';
    // auto: ICE picks the best path and falls back to the broker's relay;
    // relay forces the relay, as meshctl connect --transport relay does, to
    // check it or to keep this browser's address from the machine.
    this.path = h('select', { id: 'connect-path' },
      h('option', { value: 'auto' }, 'best path'), h('option', { value: 'relay' }, 'broker relay only'));
    // Off by default: another technician watching is the opening
    // technician's choice, as with meshctl connect --allow-observers.
    this.share = h('input', { id: 'connect-share', type: 'checkbox' });
    const button = h('button', { id: 'connect', type: 'button', class: 'primary', disabled: !allowed.length,
      onclick: () => this.connect() }, 'Connect');
    return h('div', { class: 'connect' },
      h('label', { for: 'connect-mode' }, 'Mode'), this.mode,
      h('label', { for: 'connect-path' }, 'Path'), this.path,
      h('label', { class: 'check' }, this.share, ' let other technicians watch'), button,
      allowed.length ? null : h('span', { class: 'muted' }, 'Your account allows no session modes.'));
  }

  connect() {
    if (!this.mode.value) return;
    noteConnectClick();
    this.ctx.go(sessionHash(this.id, this.mode.value, '', this.path.value, this.share.checked));
  }

  // layers draws the readiness, reachability and session panels.
  layers(card) {
    // A session is likely from here: gather ICE candidates now (warm.js).
    if (card.reachability && card.reachability.online && this.mode.value) {
      warm(this.ctx.api);
      prepare();
    }
    fill(this.readiness, readinessPanel(card.readiness));
    fill(this.reach, reachPanel(card.reachability));
    fill(this.sessionInfo, sessionPanel(card.session));
    const shared = (card.session && card.session.shared) || [];
    fill(this.watch, shared.map((s) => h('button', {
      type: 'button', class: 'watch', 'data-session': s.session,
      onclick: () => {
        noteConnectClick();
        this.ctx.go(sessionHash(this.id, 'read-only', s.session));
      },
    }, `Watch ${s.technician}'s terminal`)));
  }

  // card applies a `card` event for this machine: the layers change, the
  // stored state (not in events) stays until the next reload.
  card(card) {
    if (card.id !== this.id || !this.data) return;
    this.data = { ...this.data, ...card, snapshot: this.data.snapshot, history: this.data.history };
    this.layers(this.data);
    if (card.readiness && card.readiness.check_in_seq !== this.seq) {
      this.load(); // a new check-in: the snapshot and history changed too
    }
  }

  gone(id) {
    if (id === this.id) this.notFound('This machine is no longer visible to you.');
  }

  dispose() {
    this.gen++;
    if (this.abort) this.abort.abort();
    releaseSoon();
    discardSoon();
  }
}

// sessionHash is the session page's address.
export function sessionHash(machine, mode, observe, path, share) {
  const q = new URLSearchParams({ machine, mode });
  if (observe) q.set('observe', observe);
  if (path === 'relay') q.set('path', 'relay');
  if (share) q.set('share', '1');
  return `#/session?${q}`;
}

function readinessPanel(r) {
  r = r || {};
  const state = r.state || 'unknown';
  const reasons = r.reasons || [];
  const checkIn = time(r.last_check_in);
  return [
    h('h2', { id: 'h-readiness' }, 'Readiness'),
    h('p', { class: 'state', 'data-state': state }, status(state)),
    reasons.length ? h('ul', { class: 'reasons' }, reasons.map((x) => h('li', null, linkRollout(x, r.rollout)))) : null,
    dl([
      ['Last check-in', checkIn ? `${stamp(checkIn)} (${ago(checkIn)}${r.check_in_reason ? `, ${r.check_in_reason}` : ''})` : 'never'],
      ['Snapshot age', r.snapshot_age_s != null ? span(r.snapshot_age_s) : ''],
      ['Agent', agentFacts(r)],
      ['Rollout', rolloutFacts(r.rollout, r.last_update)],
      ['Last update', lastUpdate(r.last_update)],
      ['Enrolled', stamp(time(r.enrolled_at))],
      ['Approval', approvalText(r.approval)],
      ['Last unclean end', uncleanEnd(r.last_unclean_end)],
    ]),
  ];
}

// uncleanEnd is when the agent's last run ended without a clean stop,
// and how.
function uncleanEnd(e) {
  const at = e && time(e.at);
  if (!at) return '';
  return `${stamp(at)} (${ago(at)})${e.detail ? `: ${e.detail}` : ''}`;
}

// agentFacts is the agent's version, and the newest when it is behind.
function agentFacts(r) {
  if (!r.agent_version) return '';
  return h('span', { id: 'machine-agent', 'data-behind': String(!!r.agent_behind) }, r.agent_version,
    r.agent_behind ? h('span', { class: 'behind' }, ` behind ${r.newest_agent_version}`) : null,
    r.agent_behind && !r.rollout ? h('span', { class: 'muted' }, '; no rollout is updating it') : null);
}

// rolloutFacts is the rollout the machine is in, or the one that would
// bring its agent level, linked to the rollout's view, and the machine's
// step and wave in it. The step's detail is left to the last update when
// that says the same.
function rolloutFacts(ref, last) {
  if (!ref) return '';
  const said = last && last.rollout === ref.id && last.detail === ref.detail;
  return h('div', { id: 'machine-rollout' },
    h('div', null, h('a', { class: 'rollout-link', href: rolloutHash(ref.id) }, `rollout ${ref.id}`),
      ` to ${ref.version}, `, h('span', { class: 'rollout-state', 'data-rollout': ref.state }, ref.state)),
    h('div', { class: 'step', 'data-step': ref.step }, status(ref.step), h('span', { class: 'muted' }, ` in the ${waveName(ref.wave)}`)),
    ref.detail && !said ? h('div', { class: 'muted detail' }, ref.detail) : null);
}

// lastUpdate says how the machine's last update went, and when.
function lastUpdate(u) {
  if (!u) return '';
  const at = time(u.at);
  return h('span', { id: 'machine-last-update', 'data-outcome': u.outcome }, updateWords(u), at ? ` at ${stamp(at)}` : '',
    u.rollout ? [' (', h('a', { href: rolloutHash(u.rollout) }, `rollout ${u.rollout}`), ')'] : null);
}

// linkRollout makes the rollout a readiness reason names (the agent is
// behind; "rollout 3f9a0c1b2d4e updating it") a link to it.
function linkRollout(reason, ref) {
  const name = ref && `rollout ${ref.id}`;
  const i = name ? reason.indexOf(name) : -1;
  if (i < 0) return reason;
  return [reason.slice(0, i), h('a', { class: 'rollout-link', href: rolloutHash(ref.id) }, name), reason.slice(i + name.length)];
}

function reachPanel(reach) {
  reach = reach || {};
  const online = !!reach.online;
  const away = !online && reach.offline_reason;
  return [
    h('h2', { id: 'h-reach' }, 'Reachability'),
    h('p', { class: 'state', 'data-online': String(online), 'data-reason': away || '' },
      status(reachWord(reach)), ' ', h('span', { class: 'when' }, reachWhen(reach))),
    dl([
      ['Away since', away ? stamp(time(reach.offline_since)) : ''],
      ['Expected back', away ? stamp(time(reach.expected_back)) : ''],
      ['Broker', reach.broker],
      ['Transport', reach.transport],
      ['UDP blocked since', online && reach.udp_blocked_since ? `${stamp(time(reach.udp_blocked_since))}: sessions go through the broker's relay` : ''],
      ['Came back', online ? returnedWords(reach.returned) : ''],
      ['Detail', reach.detail],
      ['Load (1 min)', reach.load1 != null ? reach.load1.toFixed(2) : ''],
      ['Someone at it', reach.user_present == null ? '' : reach.user_present ? 'yes' : 'no'],
      ['Last seen', stamp(time(reach.last_seen))],
    ]),
  ];
}

function sessionPanel(s) {
  if (!s) return h('p', { class: 'muted' }, 'No live session.');
  return [
    h('p', { class: 'session-words' }, sessionWords(s)),
    sessionDetail(s) ? h('p', { class: 'muted' }, sessionDetail(s)) : null,
  ];
}

function approvalText(a) {
  if (!a) return '';
  if (!a.required) return 'not required';
  const parts = ['required'];
  const at = time(a.last_approved_at);
  if (at) parts.push(`last approved ${clock(at)}${a.approved_by ? ` by ${a.approved_by}` : ''}`);
  const exp = time(a.expires_at);
  if (exp) parts.push(`${exp.getTime() < Date.now() ? 'expired' : 'expires'} ${clock(exp)}`);
  return parts.join(', ');
}

// snapshotSection is the latest stored snapshot in full.
function snapshotSection(snap, r) {
  const head = h('h2', { id: 'h-snapshot' }, 'Stored state');
  if (!snap) return [head, h('p', { class: 'muted' }, 'No snapshot stored yet: the machine has not checked in.')];
  const os = snap.os || {};
  const rt = snap.runtime || {};
  const collected = time(snap.collected_at);
  const overview = h('div', { class: 'panel' },
    h('h3', null, 'Machine'),
    dl([
      ['Hostname', snap.hostname],
      ['Collected', collected ? `${stamp(collected)} (${ago(collected)})` : ''],
      ['OS', [osName(os), os.version && !osName(os).includes(os.version) ? os.version : ''].filter(Boolean).join(' ')],
      ['Family', [os.family, os.id].filter(Boolean).join(' / ')],
      ['Kernel', os.kernel],
      ['Arch', os.arch],
      ['Agent version', snap.agent_version + (r && r.agent_behind ? ` (newest is ${r.newest_agent_version})` : '')],
      ['Addresses', (snap.addresses || []).join(', ')],
      ['Consent policy', rt.consent_policy],
      ['Approval', approvalText(snap.approval)],
      ['Check-in every', rt.check_in_interval_s ? span(rt.check_in_interval_s) : ''],
      ['Heartbeat', rt.heartbeat_s ? span(rt.heartbeat_s) : ''],
      ['Boot ID', snap.boot_id],
      ['Packages', String((snap.packages || []).length)],
    ]),
    packagesList(snap.packages || []));
  return [head, h('div', { class: 'snapshot-grid' },
    overview,
    h('div', { class: 'snapshot-lists' },
      pendingTable(snap.pending_updates || []),
      commandsTable(snap.commands || []),
      sessionsTable(snap.sessions || []),
      collectorErrors(snap.collector_errors || [])))];
}

function pendingTable(ups) {
  const t = table({ class: 'data pending' }, ['Update', 'Version', 'Source', 'Security', 'First seen']);
  for (const u of ups) {
    t.tbody.append(h('tr', { class: u.security ? 'security' : null },
      h('td', null, u.id), h('td', null, u.version || ''), h('td', null, u.source || ''),
      h('td', null, u.security ? 'security' : ''), h('td', null, stamp(time(u.first_seen)))));
  }
  return h('div', { class: 'panel' }, h('h3', null, `Pending updates (${ups.length})`),
    ups.length ? t.table : h('p', { class: 'muted' }, 'None.'));
}

function commandsTable(cmds) {
  const recent = cmds.slice(-50).reverse();
  const t = table({ class: 'data commands' }, ['At', 'Command', 'Exit', 'Session']);
  for (const c of recent) {
    t.tbody.append(h('tr', null, h('td', null, stamp(time(c.at))), h('td', { class: 'mono' }, c.command),
      h('td', null, String(c.exit_code)), h('td', { class: 'mono', title: c.session || '' }, short(c.session))));
  }
  return h('div', { class: 'panel' }, h('h3', null, 'Recent commands'),
    recent.length ? t.table : h('p', { class: 'muted' }, 'None recorded.'));
}

function sessionsTable(sessions) {
  if (!sessions.length) return null;
  const t = table({ class: 'data past-sessions' }, ['Start', 'End', 'Technician', 'Mode', 'Path', 'Session']);
  for (const s of sessions.slice(-50).reverse()) {
    t.tbody.append(h('tr', null, h('td', null, stamp(time(s.start))), h('td', null, stamp(time(s.end))),
      h('td', null, s.technician), h('td', null, s.mode), h('td', null, s.path || ''),
      h('td', { class: 'mono', title: s.id }, short(s.id))));
  }
  return h('div', { class: 'panel' }, h('h3', null, 'Past sessions'), t.table);
}

function collectorErrors(errs) {
  if (!errs.length) return null;
  return h('div', { class: 'panel' }, h('h3', null, 'Collector errors'),
    h('ul', null, errs.map((e) => h('li', null, `${e.collector}: ${e.error}`))));
}

// packagesList shows every package on request: a machine may have
// thousands, so the rows are made only when the list is opened.
function packagesList(pkgs) {
  if (!pkgs.length) return null;
  const details = h('details', { class: 'packages' }, h('summary', null, `All ${pkgs.length} packages`));
  details.addEventListener('toggle', () => {
    if (!details.open || details.querySelector('table')) return;
    const t = table({ class: 'data' }, ['Package', 'Version']);
    for (const p of pkgs) t.tbody.append(h('tr', null, h('td', null, p.name), h('td', null, p.version)));
    details.append(t.table);
  });
  return details;
}

function historySection(items) {
  // Newest first, whatever order they come in.
  items = [...(items || [])].sort((a, b) => b.seq - a.seq);
  const t = table({ class: 'data history' },
    ['Seq', 'At', 'Reason', 'Boot', 'Agent', 'OS version', 'Packages', 'Pending', 'Digest']);
  for (const x of items) {
    t.tbody.append(h('tr', null,
      h('td', null, String(x.seq)), h('td', null, stamp(time(x.at))), h('td', { title: x.detail || '' }, x.reason),
      h('td', { class: 'mono', title: x.boot_id || '' }, short(x.boot_id)), h('td', null, x.agent_version),
      h('td', null, x.os_version || ''), h('td', null, String(x.packages)), h('td', null, String(x.pending_updates)),
      h('td', { class: 'mono', title: x.digest || '' }, short(x.digest))));
  }
  return [h('h2', { id: 'h-history' }, `History (${items.length} check-ins)`),
    items.length ? t.table : h('p', { class: 'muted' }, 'No check-ins stored.')];
}

// dl makes a definition list of [term, value] pairs, leaving out empty
// values.
function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function short(s) {
  return s ? s.slice(0, 8) : '';
}
