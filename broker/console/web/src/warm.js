// Gathering ICE candidates ahead of the Connect click.
//
// Chromium's port allocator gathers in phases about 60 ms apart, so ICE
// gathering takes some 120 ms even on loopback, and the offer waits for
// it (no trickle ICE). A peer connection made with iceCandidatePoolSize
// gathers before any offer exists. The machine page makes one, and the
// session page takes it if it is fresh: by the time a technician has
// read the machine page and clicked Connect, the offer can go at once.
// It makes the session's channels and offer too: creating the offer takes
// Chromium some 25 ms (its DTLS certificate among it). An unused one is
// closed when the page is left or after MAX_AGE_MS, which also releases
// its TURN allocation.

import { offerChannels } from './live.js';

const MAX_AGE_MS = 30000;

// slot is the connection being warmed: {ready (a promise of {pc, dc}
// with the offer made), pc (once made), at, timer, released}.
let slot = null;

// warm makes a connection with a session's channels and offer, so that
// its DTLS certificate, offer and candidates are ready by the click,
// unless one is already warm.
export function warm(api) {
  if (slot) return;
  const mine = { ready: null, pc: null, at: performance.now(), timer: 0, released: false };
  mine.ready = (async () => {
    const ice = await api('/api/ice');
    if (mine.released) throw new Error('released');
    const pc = new RTCPeerConnection({ iceServers: (ice && ice.iceServers) || [], iceCandidatePoolSize: 1 });
    mine.pc = pc;
    const dc = offerChannels(pc);
    await pc.setLocalDescription(await pc.createOffer());
    if (mine.released) throw new Error('released');
    return { pc, dc };
  })();
  mine.ready.catch(() => {
    if (slot === mine) slot = null;
  });
  slot = mine;
  mine.timer = setTimeout(() => release(mine), MAX_AGE_MS);
}

// take hands the warm connection to a session, which then owns it: a
// promise of {pc, dc}, or of null if warming failed; null if nothing is
// warm.
export function take() {
  const s = slot;
  slot = null;
  if (!s) return null;
  clearTimeout(s.timer);
  if (performance.now() - s.at > MAX_AGE_MS) {
    s.released = true;
    closeOf(s);
    return null;
  }
  return s.ready.catch(() => null);
}

// releaseSoon closes the current warm connection unless a session takes
// it first: the machine page calls it as it goes, and a session page that
// replaces it takes the connection in the same task.
export function releaseSoon() {
  const s = slot;
  if (s) setTimeout(() => release(s), 0);
}

function release(s) {
  if (slot !== s) return;
  slot = null;
  s.released = true;
  clearTimeout(s.timer);
  closeOf(s);
}

// closeOf closes s's connection, now or once it is made.
function closeOf(s) {
  if (s.pc) s.pc.close();
  else s.ready.then((r) => r.pc.close(), () => {});
}
