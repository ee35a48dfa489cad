// A terminal built ahead of the Connect click, like the connection in
// warm.js. Building an xterm.js terminal holds the page's main thread for
// some 15–20 ms, and a session page that builds its own does so while
// the broker's answer waits to be handled; the machine page builds one
// when the browser is idle, and the session page moves it into place.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';

const OPTIONS = {
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  scrollback: 5000,
  theme: { background: '#16181d', foreground: '#e6e6e6' },
};

// spare is the prepared terminal: {term, fit, box}, box its container,
// laid out off screen (measuring characters needs layout, so not
// display: none).
let spare = null;
let timer = 0;

// prepare builds a spare terminal once the browser is idle, unless there
// is one.
export function prepare() {
  if (spare || timer) return;
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  timer = idle(() => {
    timer = 0;
    if (spare) return;
    const box = document.createElement('div');
    box.className = 'term-box term-spare';
    document.body.appendChild(box);
    const term = new Terminal(OPTIONS);
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box);
    spare = { term, fit, box };
  });
}

// takeSpare hands the spare terminal, if any, to a session page, which
// then owns it; it is taken in the same task as the machine page goes, so
// discardSoon does not drop it.
export function takeSpare() {
  const s = spare;
  spare = null;
  return s;
}

// terminal puts a terminal in parent: s (from takeSpare), moved there, or
// a new one. The DOM renderer is used (no canvas or WebGL addon), so the
// text is in .xterm-rows for tests and screen readers.
export function terminal(parent, s) {
  if (s) {
    s.box.classList.remove('term-spare');
    parent.appendChild(s.box);
    return { term: s.term, fit: s.fit };
  }
  const box = document.createElement('div');
  box.className = 'term-box';
  parent.appendChild(box);
  const term = new Terminal(OPTIONS);
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  return { term, fit };
}

// discardSoon drops the spare terminal unless a session page takes it
// first (in the same task the machine page goes).
export function discardSoon() {
  setTimeout(() => {
    if (timer && window.cancelIdleCallback) window.cancelIdleCallback(timer);
    else if (timer) clearTimeout(timer);
    timer = 0;
    if (!spare) return;
    spare.term.dispose();
    spare.box.remove();
    spare = null;
  }, 0);
}
