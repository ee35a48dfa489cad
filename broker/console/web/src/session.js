// The session page (#/session?machine=ID&mode=M[&observe=SID][&path=relay]): a live
// terminal in xterm.js, with the session's state, mode, network path and
// the agent's notices around it.

import { takeSpare, terminal } from './spareterm.js';
import { h, fill, setText } from './dom.js';
import { LiveSession } from './live.js';
import { MODES } from './machine.js';
import { startTiming, firstByte, noteConnectClick } from './timing.js';

const INPUT_PAUSED = 'input paused by the person at the machine';

const utf8 = new TextEncoder();

// sessionView mounts the session page into root and starts the session.
export function sessionView(root, ctx, params) {
  startTiming();
  const v = new SessionPage(root, ctx, params);
  v.start();
  return v;
}

class SessionPage {
  constructor(root, ctx, params) {
    this.ctx = ctx;
    this.machine = params.get('machine') || '';
    this.mode = params.get('mode') || 'read-only';
    this.observe = params.get('observe') || '';
    this.relayOnly = params.get('path') === 'relay';
    this.share = params.get('share') === '1';
    this.name = this.machine;
    this.watched = ''; // the technician whose terminal we observe, once known
    this.cardRequested = false;
    this.build(root);
  }

  build(root) {
    const back = `#/machine/${encodeURIComponent(this.machine)}`;
    this.title = h('h1', null);
    this.stateEl = h('span', { id: 'session-state', 'aria-live': 'polite' });
    this.pathEl = h('span', { id: 'session-path' });
    this.idEl = h('span', { id: 'session-id', class: 'mono' });
    this.inputEl = h('span', { id: 'session-input', class: 'warn' });
    this.noticeEl = h('p', { id: 'session-notice', 'aria-live': 'polite' });
    this.disconnectBtn = h('button', { id: 'disconnect', type: 'button', onclick: () => this.disconnect() }, 'Disconnect');
    this.againBtn = h('button', { id: 'reconnect', type: 'button', hidden: true, onclick: () => this.again() }, 'Connect again');
    this.termEl = h('div', { id: 'terminal', role: 'application', 'aria-label': 'Terminal' });
    this.el = h('div', { id: 'session', 'data-state': '' },
      h('div', { class: 'session-head' },
        this.title,
        h('a', { class: 'back', href: back }, 'Back to the machine'),
        this.againBtn,
        this.disconnectBtn),
      h('dl', { class: 'session-facts' },
        fact('State', this.stateEl), fact('Mode', h('span', { id: 'session-mode' }, this.mode)),
        fact('Path', this.pathEl), fact('Session', this.idEl), fact('Input', this.inputEl)),
      this.noticeEl,
      this.termEl);
    fill(root, this.el);
    this.heading();
  }

  heading() {
    let t = `Terminal on ${this.name}`;
    if (this.observe) t = `Watching ${this.watched ? `${this.watched}'s` : 'a shared'} terminal on ${this.name}`;
    setText(this.title, t);
  }

  start() {
    if (!this.machine || !MODES.includes(this.mode) || (this.observe && !/^[0-9a-f]{32}$/.test(this.observe))) {
      this.setState('ended');
      this.showNotice('This session link is incomplete or malformed.', 'error');
      return;
    }
    this.live = new LiveSession({
      api: this.ctx.api,
      machine: this.machine,
      mode: this.mode,
      observe: this.observe,
      relayOnly: this.relayOnly,
      share: this.share,
      size: () => (this.term ? { rows: this.term.rows, cols: this.term.cols } : { rows: 24, cols: 80 }),
      handlers: {
        state: (s) => this.setState(s),
        answer: (r) => this.answered(r),
        output: (b) => this.output(b),
        notice: (t) => this.notice(t),
        exit: (s) => this.exited(s),
        failed: (m) => this.failed(m),
        path: (p) => setText(this.pathEl, p),
      },
    });
    // Negotiation starts first: it waits on the network, and the
    // terminal is put in place meanwhile (it is needed when the channel
    // opens). The machine page usually left one ready (spareterm.js);
    // either way it waits one task, so that the session request is not
    // held up behind it.
    this.spare = takeSpare();
    this.live.start();
    this.termTimer = setTimeout(() => this.openTerminal(), 0);
  }

  // openTerminal puts the terminal in its box, the spare one from the
  // machine page or a new one, and fits it.
  openTerminal() {
    if (this.term) return;
    clearTimeout(this.termTimer);
    performance.mark('rm:termstart');
    const { term, fit } = terminal(this.termEl, this.spare);
    this.spare = null;
    this.fit = fit;
    this.term = term;
    this.refit();
    term.onData((d) => this.live && this.live.sendInput(utf8.encode(d)));
    // onBinary carries bytes that are not UTF-8 (some mouse reports).
    term.onBinary((d) => this.live && this.live.sendInput(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
    // An observer does not resize the terminal it watches.
    term.onResize(({ rows, cols }) => !this.observe && this.live && this.live.resize(rows, cols));
    this.onWindowResize = () => {
      cancelAnimationFrame(this.frame);
      this.frame = requestAnimationFrame(() => this.refit());
    };
    window.addEventListener('resize', this.onWindowResize);
    performance.mark('rm:termend');
  }

  refit() {
    try {
      this.fit.fit();
    } catch {
      // Not laid out (hidden): the next resize fits it.
    }
  }

  // loadCard reads the machine's card for its name and session flags
  // (input paused). It waits until the session is under way, so it does
  // not compete with the session's setup; later changes come as events.
  async loadCard() {
    if (this.cardRequested) return;
    this.cardRequested = true;
    try {
      const card = await this.ctx.api(`/api/machines/${encodeURIComponent(this.machine)}`);
      this.name = `${card.client}/${card.name}`;
      this.heading();
      this.card(card);
    } catch {
      // The session request reports what matters (not found, refused).
    }
  }

  reload() {
    // The session runs peer to peer; a stream reconnect changes nothing.
  }

  // card applies the machine's card: an approval wait and input paused.
  card(card) {
    if (card.id !== this.machine) return;
    const s = card.session;
    if (s && s.waiting_for_approval > 0 && this.live) this.live.approvalPending();
    setText(this.inputEl, s && s.input_paused ? INPUT_PAUSED : '');
    if (this.observe && s && s.shared) {
      const w = s.shared.find((x) => x.session === this.observe);
      if (w) {
        this.watched = w.technician;
        this.heading();
      }
    }
  }

  setState(s) {
    setText(this.stateEl, s);
    this.el.dataset.state = s;
    if (s === 'active' || s === 'waiting-for-approval') this.loadCard();
    if (s === 'waiting-for-approval' && this.term && !this.waitShown) {
      // Said once, dimmed, in the terminal itself: it is where the
      // technician is looking.
      this.waitShown = true;
      this.term.write('\x1b[2mWaiting for the person at the machine to approve this session…\x1b[0m\r\n');
    }
    if (s === 'active' && this.term) this.term.focus();
    if (s === 'ended') this.ended();
  }

  // ended leaves the page as a record of the session: the terminal stays
  // readable, its cursor hidden, and a new session is one click away.
  ended() {
    this.disconnectBtn.disabled = true;
    this.againBtn.hidden = false;
    if (this.term) this.term.write('\x1b[?25l');
  }

  // again opens a new session with the same parameters.
  again() {
    noteConnectClick();
    this.ctx.reopen();
  }

  answered(r) {
    if (!r) return;
    setText(this.idEl, r.session || '');
    if (r.name) {
      this.name = r.name;
      this.heading();
    }
    if (r.mode) setText(document.getElementById('session-mode'), r.mode);
  }

  output(bytes) {
    firstByte();
    if (!this.term) this.openTerminal(); // only if output outran the timer
    this.term.write(bytes);
  }

  notice(text) {
    this.showNotice(text);
    this.termLine(`\x1b[33m${text}\x1b[0m`);
  }

  exited(status) {
    const msg = status === null ? 'The shell exited.' : `The shell exited with status ${status}.`;
    this.showNotice(msg);
    this.termLine(`\x1b[33m[${msg}]\x1b[0m`);
  }

  failed(message) {
    this.showNotice(message, 'error');
    this.termLine(`\x1b[91m${message}\x1b[0m`);
  }

  // termLine writes a line of our own into the terminal, on a line of its
  // own even if the output stopped mid-line.
  termLine(s) {
    if (!this.term) return;
    const midLine = this.term.buffer.active.cursorX > 0;
    this.term.write(`${midLine ? '\r\n' : ''}${s}\r\n`);
  }

  // showNotice shows the last notice or error; kind styles it.
  showNotice(text, kind = 'notice') {
    setText(this.noticeEl, text);
    this.noticeEl.dataset.kind = kind;
  }

  disconnect() {
    if (!this.live || this.live.ended()) return;
    this.live.end();
    this.showNotice('Disconnected.');
  }

  // dispose ends the session: leaving the page closes the connection.
  dispose() {
    clearTimeout(this.termTimer);
    if (this.spare) {
      this.spare.term.dispose();
      this.spare.box.remove();
    }
    if (this.live) this.live.end();
    window.removeEventListener('resize', this.onWindowResize);
    cancelAnimationFrame(this.frame);
    if (this.term) this.term.dispose();
  }
}

function fact(label, value) {
  return h('div', null, h('dt', null, label), h('dd', null, value));
}
