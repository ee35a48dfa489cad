// The readymesh web console: the entry point. It signs in, keeps the
// live-update stream open, and shows one view at a time by the URL's hash:
//
//   #/fleet (default)       machines by client
//   #/machine/ID            one machine's card and stored state
//   #/session?machine=ID&mode=M[&observe=SID][&path=relay][&share=1]   a live terminal
//   #/rollouts, #/rollout/ID  the rollouts, and one with its machines' steps
//   #/alerts, #/queue, #/audit
//   #login=CODE             the sign-in form, code filled in (meshctl console's link)
//
// A view is an object with dispose() and any of reload(), card(card),
// gone(id), list(kind) and keydown(event), which the stream and the
// keyboard feed.

import { api, APIError, setCSRF } from './api.js';
import { h, fill, setText, flash } from './dom.js';
import { Events } from './events.js';
import { fleetView } from './fleet.js';
import { machineView } from './machine.js';
import { sessionView } from './session.js';
import { listView } from './lists.js';
import { rolloutView, rolloutsView } from './rollout.js';

const app = {
  me: null, // the technician signed in
  broker: '',
  view: null,
  route: '', // the hash the view was made for
  events: null,
};

const main = document.getElementById('main');
const header = document.getElementById('top');

// ctx is what views use: the technician, and API calls that notice a
// lost sign-in.
const ctx = {
  get me() {
    return app.me;
  },
  api: async (path, opts) => {
    try {
      return await api(path, opts);
    } catch (err) {
      if (err instanceof APIError && err.status === 401) signedOut(err.message);
      throw err;
    }
  },
  error: (err) => flash(err && err.message ? err.message : String(err)),
  // go navigates to hash and shows it now, rather than a task later on
  // hashchange (which then finds it shown): a session's clock is running.
  go: (hash) => {
    location.hash = hash;
    show();
  },
  // reopen makes the current view afresh (a new session on the same page).
  reopen: () => {
    disposeView();
    show();
  },
};

// parseRoute splits the hash into a view name and its arguments.
function parseRoute(hash) {
  if (hash.startsWith('#login=')) return { name: 'login', code: decode(hash.slice(7)) };
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const parts = path.split('/');
  switch (parts[0]) {
    case '':
    case 'fleet':
      return { name: 'fleet' };
    case 'machine':
      return parts[1] ? { name: 'machine', id: decode(parts.slice(1).join('/')) } : { name: 'fleet' };
    case 'session':
      return { name: 'session', params };
    case 'rollouts':
      return { name: 'rollouts' };
    case 'rollout':
      return parts[1] ? { name: 'rollout', id: decode(parts.slice(1).join('/')) } : { name: 'rollouts' };
    case 'alerts':
    case 'queue':
    case 'audit':
      return { name: parts[0] };
    default:
      return { name: 'unknown' };
  }
}

// decode is decodeURIComponent that leaves a malformed escape as it is.
function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// show makes the view for the current hash, ending the one before.
function show() {
  const route = parseRoute(location.hash);
  if (route.name === 'login') {
    showLogin(route.code);
    return;
  }
  if (!app.me) return; // boot() shows the right thing once it knows
  if (app.view && app.route === location.hash) return;
  disposeView();
  flash('');
  header.hidden = false;
  app.route = location.hash;
  markNav(route.name);
  switch (route.name) {
    case 'fleet':
      app.view = fleetView(main, ctx);
      break;
    case 'machine':
      app.view = machineView(main, ctx, route.id);
      break;
    case 'session':
      app.view = sessionView(main, ctx, route.params);
      break;
    case 'rollouts':
      app.view = rolloutsView(main, ctx);
      break;
    case 'rollout':
      app.view = rolloutView(main, ctx, route.id);
      break;
    case 'alerts':
    case 'queue':
    case 'audit':
      app.view = listView(main, ctx, route.name);
      break;
    default:
      fill(main, h('div', { id: 'not-found', class: 'panel' }, h('h1', null, 'No such page'),
        h('p', null, h('a', { href: '#/fleet' }, 'Go to the fleet'))));
      app.view = { dispose() {} };
  }
  document.title = `${titleOf(route.name)} · readymesh`;
}

function disposeView() {
  if (app.view) app.view.dispose();
  app.view = null;
  app.route = '';
}

function titleOf(name) {
  return {
    fleet: 'Fleet', machine: 'Machine', session: 'Session', rollouts: 'Rollouts', rollout: 'Rollout',
    alerts: 'Alerts', queue: 'Queue', audit: 'Audit',
  }[name] || 'Console';
}

// markNav marks the current section in the header.
function markNav(name) {
  const current = { machine: 'fleet', session: 'fleet', rollout: 'rollouts' }[name] || name;
  for (const a of header.querySelectorAll('nav a')) {
    if (a.id === `nav-${current}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// signIn records the technician and starts the app proper.
function signIn(me) {
  app.me = me.technician;
  app.broker = me.broker || app.broker;
  setCSRF(me.csrf);
  setText(document.getElementById('whoami'), app.me.name);
  setText(document.getElementById('role'), app.me.admin ? 'admin' : '');
  setText(document.getElementById('broker'), app.broker ? `broker ${app.broker}` : '');
  header.hidden = false;
  startEvents();
}

// signedOut forgets the sign-in and shows the login form, keeping the
// hash so the same page comes back after signing in.
function signedOut(message) {
  if (!app.me && document.getElementById('login')) return;
  app.me = null;
  setCSRF('');
  stopEvents();
  disposeView();
  header.hidden = true;
  showLogin('', message);
}

// showLogin shows the sign-in form. code pre-fills it (from a #login=
// link); it is never submitted without the technician. note says why the
// form is shown (signed out, expired).
function showLogin(code, note) {
  disposeView();
  flash('');
  header.hidden = true;
  document.title = 'Sign in · readymesh';
  const input = h('input', { id: 'login-code', name: 'code', type: 'text', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'rmc1_…', 'aria-describedby': 'login-help login-error' });
  input.value = code || '';
  const error = h('p', { id: 'login-error', role: 'alert' });
  const button = h('button', { id: 'login-submit', type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { id: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'readymesh console'),
    note ? h('p', { class: 'login-note', role: 'status' }, note) : null,
    h('label', { for: 'login-code' }, 'Sign-in code'),
    input,
    button,
    error,
    h('p', { id: 'login-help', class: 'muted' },
      'Run meshctl console on your workstation and open the link it prints, or paste its code here. ' +
      'A code works once, for two minutes.'),
    app.me ? h('p', { class: 'muted' }, `You are signed in as ${app.me.name}; this code signs in again. `,
      h('a', { href: '#/fleet' }, 'Back to the fleet')) : null);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    login(input.value.trim(), button, error);
  });
  fill(main, h('div', { class: 'login-view' }, form));
  input.focus();
}

async function login(code, button, error) {
  if (!code) return;
  button.disabled = true;
  setText(error, '');
  try {
    const res = await api('/api/login', { method: 'POST', body: { code } });
    setCSRF(res.csrf);
    let me = res;
    try {
      me = await api('/api/me'); // for the broker's name
    } catch {
      // The login answer has all the rest.
    }
    signIn(me);
    // Leave the code out of the history; go where the technician was.
    const dest = location.hash.startsWith('#login=') || !location.hash ? '#/fleet' : location.hash;
    history.replaceState(null, '', dest);
    app.route = '';
    show();
  } catch (err) {
    setText(error, err.message);
    button.disabled = false;
  }
}

async function logout() {
  try {
    await api('/api/logout', { method: 'POST' });
  } catch (err) {
    if (!(err instanceof APIError && err.status === 401)) {
      flash(err.message);
      return;
    }
  }
  history.replaceState(null, '', '#/fleet');
  signedOut('Signed out.');
}

function setLive(on) {
  const el = document.getElementById('live');
  setText(el, on ? 'live' : 'reconnecting…');
  el.dataset.live = String(on);
}

function startEvents() {
  stopEvents();
  app.events = new Events({
    open: () => {
      setLive(true);
      if (app.view && app.view.reload) app.view.reload();
    },
    down: () => setLive(false),
    card: (card) => app.view && app.view.card && app.view.card(card),
    gone: (id) => app.view && app.view.gone && app.view.gone(id),
    list: (kind) => app.view && app.view.list && app.view.list(kind),
    signedOut: () => signedOut('The broker ended this sign-in.'),
    failed: async () => {
      // The stream was refused: find out whether we are still signed in.
      try {
        await api('/api/me');
        return true;
      } catch (err) {
        if (err instanceof APIError && err.status === 401) {
          signedOut(err.message);
          return false;
        }
        return true;
      }
    },
  });
  app.events.start();
}

function stopEvents() {
  if (app.events) app.events.stop();
  app.events = null;
  setLive(false);
}

// boot finds out whether the browser is signed in.
async function boot() {
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', show);
  document.addEventListener('keydown', (e) => app.view && app.view.keydown && app.view.keydown(e));
  // Leaving the page closes a live session's connection.
  window.addEventListener('pagehide', disposeView);
  window.addEventListener('pageshow', (e) => e.persisted && show());
  const route = parseRoute(location.hash);
  try {
    signIn(await api('/api/me'));
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      showLogin(route.name === 'login' ? route.code : '');
      return;
    }
    fill(main, h('div', { class: 'panel' }, h('h1', null, 'The broker did not answer'), h('p', null, err.message),
      h('p', null, h('button', { type: 'button', onclick: () => location.reload() }, 'Try again'))));
    return;
  }
  show();
}

boot();
