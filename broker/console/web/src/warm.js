// Gathering ICE candidates ahead of the Connect click.
//
// Chromium's port allocator gathers in phases about 60 ms apart, so ICE
// gathering takes some 120 ms even on loopback, and the offer waits for
// it (no trickle ICE). A peer connection made with iceCandidatePoolSize
// gathers before any offer exists. The machine page makes one, and the
// session page takes it if it is fresh: by the time a technician has
// read the machine page and clicked Connect, the offer can go at once.
// An unused one is closed when the page is left or after MAX_AGE_MS,
// which also releases its TURN allocation.

const MAX_AGE_MS = 30000;

// slot is the connection being warmed: {pc (null while /api/ice is
// pending), at, timer}.
let slot = null;

// warm starts gathering, unless a connection is already warm.
export async function warm(api) {
  if (slot) return;
  const mine = { pc: null, at: performance.now(), timer: 0 };
  slot = mine;
  let ice;
  try {
    ice = await api('/api/ice');
  } catch {
    if (slot === mine) slot = null;
    return;
  }
  if (slot !== mine) return; // taken or released meanwhile
  mine.pc = new RTCPeerConnection({ iceServers: (ice && ice.iceServers) || [], iceCandidatePoolSize: 1 });
  mine.timer = setTimeout(() => release(mine), MAX_AGE_MS);
}

// take returns the warm connection for a session, which then owns it, or
// null if there is none ready.
export function take() {
  const s = slot;
  slot = null;
  if (!s || !s.pc) return null;
  clearTimeout(s.timer);
  if (performance.now() - s.at > MAX_AGE_MS || s.pc.signalingState !== 'stable') {
    s.pc.close();
    return null;
  }
  return s.pc;
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
  clearTimeout(s.timer);
  if (s.pc) s.pc.close();
}
