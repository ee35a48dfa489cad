// A live terminal session with an agent over WebRTC. The broker only
// signals: the browser makes the offer, POST /api/sessions carries it to
// the agent (through consent, if the machine asks for it) and returns the
// answer; after that, bytes flow browser ⇄ agent directly or through the
// broker's TURN relay.

import * as frames from './frames.js';
import { take } from './warm.js';

// How long ICE gathering may take before the offer goes with what it has
// (no trickle ICE: the SDP carries every candidate).
const GATHER_MS = 3000;
// After this long, a pending session request is presumably waiting for
// the person at the machine.
const APPROVAL_HINT_MS = 1000;
const PATH_EVERY_MS = 2000;
// Input goes in frames of at most this many bytes, well under the data
// channel's message limit and the agent's frame limit.
const INPUT_CHUNK = 16 * 1024;

const utf8 = new TextEncoder();
const text = new TextDecoder();

// LiveSession runs one session. opts: machine, mode, observe (a session
// ID to watch, or ''), relayOnly (use only the broker's TURN relay), share
// (let other technicians watch the terminal), size() → {rows, cols}, api (the fetch wrapper), and
// handlers:
//   state(word)    requesting, waiting-for-approval, connecting, active, ended
//   answer(resp)   the broker's answer to POST /api/sessions
//   output(bytes)  terminal output (Uint8Array)
//   notice(text)   a message from the agent
//   exit(status)   the shell exited
//   failed(text)   an error ended the session
//   path(text)     the network path, e.g. "direct-webrtc (host ↔ host)"
export class LiveSession {
  constructor(opts) {
    this.opts = opts;
    this.h = opts.handlers;
    this.pc = null;
    this.dc = null;
    this.reader = new frames.Reader();
    this.state = '';
    this.requesting = false; // POST /api/sessions is pending
    this.abort = new AbortController();
    this.timers = [];
    this.lastPath = '';
  }

  // start opens the session; failures end it through handlers.failed.
  async start() {
    try {
      await this.negotiate();
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      this.fail(err && err.message ? err.message : String(err));
    }
  }

  async negotiate() {
    const { api, machine, mode } = this.opts;
    this.setState('requesting');
    mark('start');
    // A connection the machine page made has its candidates gathered;
    // relay-only sessions gather their own, relay candidates only.
    const relayOnly = !!this.opts.relayOnly;
    const ready = relayOnly ? null : await take();
    if (ready && this.ended()) {
      ready.pc.close();
      return;
    }
    let pc;
    let dc;
    if (ready) {
      ({ pc, dc } = ready); // its offer is made and its candidates gathered
      this.pc = pc;
    } else {
      const ice = await api('/api/ice', { signal: this.abort.signal });
      mark('ice');
      if (this.ended()) return;
      pc = new RTCPeerConnection({ iceServers: (ice && ice.iceServers) || [],
        iceTransportPolicy: relayOnly ? 'relay' : 'all' });
      this.pc = pc;
      dc = offerChannels(pc);
      await pc.setLocalDescription(await pc.createOffer());
    }
    pc.addEventListener('connectionstatechange', () => this.onConnectionState());
    dc.addEventListener('open', () => this.onOpen());
    dc.addEventListener('message', (e) => this.onMessage(e.data));
    dc.addEventListener('close', () => this.onChannelClose());
    this.dc = dc;
    mark('offer');
    await gathered(pc, GATHER_MS);
    mark('gathered');
    if (this.ended()) return;

    const hint = setTimeout(() => this.setState('waiting-for-approval'), APPROVAL_HINT_MS);
    this.requesting = true;
    let resp;
    try {
      resp = await api('/api/sessions', {
        method: 'POST',
        body: { machine, mode, sdp: pc.localDescription.sdp },
        signal: this.abort.signal,
      });
    } finally {
      this.requesting = false;
      clearTimeout(hint);
    }
    mark('answer');
    if (this.ended()) return;
    this.h.answer(resp);
    this.setState('connecting');
    await pc.setRemoteDescription({ type: 'answer', sdp: resp.sdp });
  }

  // approvalPending is called when the machine's card says a request
  // waits for approval; it matters only while ours is pending.
  approvalPending() {
    if (this.requesting) this.setState('waiting-for-approval');
  }

  onOpen() {
    if (this.ended()) return;
    const { observe, size } = this.opts;
    const { rows, cols } = size();
    const header = observe
      ? { observe }
      : { rows, cols, term: 'xterm-256color', allow_observers: !!this.opts.share };
    mark('open');
    this.send(frames.encode(frames.HEADER, utf8.encode(JSON.stringify(header))));
    this.setState('active');
    this.updatePath();
    this.timers.push(setInterval(() => this.updatePath(), PATH_EVERY_MS));
  }

  onMessage(data) {
    if (this.ended()) return;
    let got;
    try {
      // Binary messages arrive as ArrayBuffers; a text message (which the
      // agent should not send) still counts as its UTF-8 bytes.
      got = this.reader.push(typeof data === 'string' ? utf8.encode(data) : new Uint8Array(data));
    } catch (err) {
      this.fail(err.message);
      return;
    }
    for (const f of got) {
      this.onFrame(f.type, f.payload);
      if (this.ended()) return;
    }
  }

  onFrame(type, payload) {
    switch (type) {
      case frames.OUTPUT:
      case frames.STDERR:
        this.h.output(payload);
        break;
      case frames.NOTICE:
        this.h.notice(text.decode(payload));
        break;
      case frames.EXIT: {
        const status = payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0, false) : null;
        this.h.exit(status);
        this.end();
        break;
      }
      case frames.ERROR:
        this.fail(errorText(payload));
        break;
      default:
        // A frame type from a newer agent: ignore it.
    }
  }

  onChannelClose() {
    if (!this.ended()) this.fail('the agent closed the terminal channel');
  }

  onConnectionState() {
    if (!this.pc || this.ended()) return;
    switch (this.pc.connectionState) {
      case 'failed':
        this.fail('the connection to the machine failed (no network path found, or it was lost)');
        break;
      case 'disconnected':
        this.h.notice('the connection is interrupted; waiting for it to recover…');
        break;
      case 'closed':
        this.end();
        break;
      default:
    }
  }

  // sendInput sends what the technician typed. Every mode sends it: the
  // agent refuses read-only input, with a notice.
  sendInput(bytes) {
    if (this.state !== 'active' || !bytes.length) return; // empty input would mean end of input
    for (let i = 0; i < bytes.length; i += INPUT_CHUNK) {
      this.send(frames.encode(frames.INPUT, bytes.subarray(i, i + INPUT_CHUNK)));
    }
  }

  resize(rows, cols) {
    if (this.state === 'active') this.send(frames.resize(rows, cols));
  }

  send(bytes) {
    if (this.dc && this.dc.readyState === 'open') this.dc.send(bytes);
  }

  // updatePath reads the selected candidate pair from getStats.
  async updatePath() {
    if (!this.pc || this.ended()) return;
    let stats;
    try {
      stats = await this.pc.getStats();
    } catch {
      return;
    }
    const p = pathOf(stats);
    if (p && p !== this.lastPath) {
      this.lastPath = p;
      this.h.path(p);
    }
  }

  setState(s) {
    if (this.state === s || this.state === 'ended') return;
    this.state = s;
    this.h.state(s);
  }

  ended() {
    return this.state === 'ended';
  }

  fail(message) {
    if (this.ended()) return;
    this.h.failed(message);
    this.end();
  }

  // end closes everything; the session cannot be resumed.
  end() {
    if (this.ended()) return;
    this.setState('ended');
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.dc) this.dc.close();
    if (this.pc) this.pc.close();
  }
}

// mark records a phase of session setup as a performance mark
// ("rm:ice", "rm:open", …), for profiling in the browser's tools.
function mark(name) {
  if (performance.mark) performance.mark(`rm:${name}`);
}

// gathered resolves when ICE gathering is complete or after ms.
// offerChannels creates the channels of a session's offer and returns the
// terminal's. The agent's peer connection has echo and bytes negotiated
// out of band with fixed IDs (mesh/rtc), so the offer must have them too;
// the terminal is opened in-band, and the agent serves it by its label.
export function offerChannels(pc) {
  pc.createDataChannel('echo', { negotiated: true, id: 0 });
  pc.createDataChannel('bytes', { negotiated: true, id: 1 });
  const dc = pc.createDataChannel('terminal'); // ordered and reliable by default
  dc.binaryType = 'arraybuffer';
  return dc;
}

function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  // Chromium reports gathering complete some 50 ms after its last useful
  // candidate, once later phases (TCP, which the agent does not use) are
  // done. The offer goes as soon as it holds a candidate of every type
  // the ICE servers can give: server-reflexive with STUN, relay with
  // TURN (host candidates come first, from the sockets those are learnt
  // on). Later candidates would add nothing the agent can use. Without
  // ICE servers it waits for completion.
  const want = new Set();
  const config = pc.getConfiguration();
  for (const server of config.iceServers || []) {
    for (const url of [].concat(server.urls || [])) {
      if (url.startsWith('stun:') && config.iceTransportPolicy !== 'relay') want.add('srflx');
      if (url.startsWith('turn:')) want.add('relay');
    }
  }
  const seen = new Set();
  const sdp = (pc.localDescription && pc.localDescription.sdp) || '';
  for (const m of sdp.matchAll(/ typ (host|srflx|relay)/g)) seen.add(m[1]);
  const enough = () => want.size > 0 && [...want].every((t) => seen.has(t));
  if (enough()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const onCandidate = (e) => {
      if (!e.candidate) {
        done();
        return;
      }
      seen.add(e.candidate.type);
      if (enough()) done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

// pathOf names the network path of the selected candidate pair:
// "relayed-turn" if either end is a TURN relay, else "direct-webrtc", with
// the two candidate types.
export function pathOf(stats) {
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId) || pair;
  });
  if (!pair) {
    stats.forEach((r) => {
      if (!pair && r.type === 'candidate-pair' && (r.selected || (r.nominated && r.state === 'succeeded'))) pair = r;
    });
  }
  if (!pair) return '';
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  const lt = (local && local.candidateType) || '?';
  const rt = (remote && remote.candidateType) || '?';
  const kind = lt === 'relay' || rt === 'relay' ? 'relayed-turn' : 'direct-webrtc';
  return `${kind} (${lt} ↔ ${rt})`;
}

// errorText reads an error frame: {"code","message"}.
function errorText(payload) {
  const raw = text.decode(payload);
  try {
    const e = JSON.parse(raw);
    return e.message || e.code || raw;
  } catch {
    return raw || 'the agent refused the terminal';
  }
}
