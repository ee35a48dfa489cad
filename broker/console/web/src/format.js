// Formatting of times, durations and the words the console shows for a
// machine's state.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad = (n) => String(n).padStart(2, '0');

// time parses an RFC 3339 time from the API. Missing, unparsable and Go's
// zero time (year 1) give null.
export function time(s) {
  if (!s) return null;
  const ms = Date.parse(s);
  if (Number.isNaN(ms) || ms < Date.UTC(1971, 0, 1)) return null;
  return new Date(ms);
}

// clock is "10:42" for today, "3 Jun 10:42" for another day, local time.
export function clock(d) {
  if (!d) return '';
  const now = new Date();
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return hm;
  const day = `${d.getDate()} ${MONTHS[d.getMonth()]}`;
  return d.getFullYear() === now.getFullYear() ? `${day} ${hm}` : `${day} ${d.getFullYear()} ${hm}`;
}

// stamp is "2026-06-03 10:42:05", local time, for tables.
export function stamp(d) {
  if (!d) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ago is "3 min ago" and the like.
export function ago(d, now = Date.now()) {
  if (!d) return '';
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  return `${span(s)} ago`;
}

// span is a duration in seconds, in its largest sensible unit.
export function span(s) {
  if (s == null || Number.isNaN(s)) return '';
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} days`;
}

// reachWord is the word beside the reachability dot: "online", or why
// the machine is away (wire.Away*: stopped, shutdown, asleep, quiet,
// lost), the words meshctl machines uses; "offline" when no broker knows
// a reason (an older broker).
export function reachWord(reach) {
  if (reach && reach.online) return 'online';
  return (reach && reach.offline_reason) || 'offline';
}

// awaySince is when an offline machine went away: offline_since, else
// when it was last seen.
function awaySince(reach) {
  return time(reach.offline_since) || time(reach.last_seen);
}

// reachWhen is the reachability column's time: "since 10:42" while
// online ("· UDP blocked 2 h" when the bridge fell back from QUIC), how
// long the machine has been away when its reason is known ("2 h · back
// ~14:00"), else "last seen 3 min ago".
export function reachWhen(reach, now = Date.now()) {
  if (!reach) return '';
  if (reach.online) {
    const since = time(reach.since);
    const udp = time(reach.udp_blocked_since);
    return [since && `since ${clock(since)}`, udp && `UDP blocked ${span((now - udp.getTime()) / 1000)}`]
      .filter(Boolean).join(' · ');
  }
  if (reach.offline_reason) {
    const at = awaySince(reach);
    const back = time(reach.expected_back);
    return [at && span(Math.max(0, now - at.getTime()) / 1000),
      back && (back.getTime() > now ? `back ~${clock(back)}` : `due ${clock(back)}`)].filter(Boolean).join(' · ');
  }
  const seen = time(reach.last_seen);
  return seen ? `last seen ${ago(seen, now)}` : 'never seen';
}

// reachDetail is the longer account of reachability for a tooltip, one
// fact a line: the bridge, why and since when the machine is away, what
// it said when it came back.
export function reachDetail(reach) {
  if (!reach) return '';
  const lines = [];
  if (reach.online) {
    lines.push([reach.broker && `broker ${reach.broker}`, reach.transport && `transport ${reach.transport}`].filter(Boolean).join(', '));
    const udp = time(reach.udp_blocked_since);
    if (udp) lines.push(`UDP blocked since ${clock(udp)}: sessions go through the broker's relay`);
    if (reach.returned) lines.push(`came back: ${returnedWords(reach.returned)}`);
  } else if (reach.offline_reason) {
    const at = awaySince(reach);
    lines.push(`${AWAY[reach.offline_reason] || reach.offline_reason}${at ? ` since ${clock(at)}` : ''}`);
    if (reach.offline_reason === 'lost') lines.push('no notice: the network or power may be down');
    const back = time(reach.expected_back);
    if (back) lines.push(`expected back about ${clock(back)}`);
  }
  if (reach.detail) lines.push(reach.detail);
  return lines.filter(Boolean).join('\n');
}

// AWAY says each reason in a few words, as meshctl show and explain do.
const AWAY = {
  stopped: 'agent stopped',
  shutdown: 'shut down',
  asleep: 'asleep',
  quiet: 'quiet on a metered connection',
  lost: 'lost',
};

// returnedWords says what an agent said of its time away when it came
// back (wire.Returned): "resumed from sleep at 07:58".
export function returnedWords(r) {
  if (!r) return '';
  const at = clock(time(r.at));
  const words = {
    resumed: `resumed from sleep at ${at}`,
    booted: `booted at ${at}`,
    unclean: `the previous run ended uncleanly at ${at}`,
    restarted: `the agent restarted at ${at}`,
    unmetered: `left quiet mode at ${at}: the connection is no longer metered`,
  }[r.what] || `${r.what} at ${at}`;
  return r.detail ? `${words} (${r.detail})` : words;
}

// sessionWords says what a card's session layer holds, e.g. "active ·
// interactive · direct-webrtc · input-paused". Empty when there is none.
export function sessionWords(s) {
  if (!s) return '';
  const w = [s.state];
  if (s.state === 'active') {
    if (s.mode) w.push(s.mode);
    if (s.path) w.push(s.path);
  }
  if (s.waiting_for_approval > 0 && s.state !== 'waiting-for-approval') w.push('waiting-for-approval');
  if (s.input_paused) w.push('input-paused');
  if (s.busy) w.push('busy');
  return w.filter(Boolean).join(' · ');
}

// sessionDetail is the longer description for a tooltip or the machine
// page: who is connected and whether someone is at the machine.
export function sessionDetail(s) {
  if (!s) return '';
  const parts = [];
  if (s.technicians && s.technicians.length) parts.push(`technicians: ${s.technicians.join(', ')}`);
  if (s.sessions > 1) parts.push(`${s.sessions} sessions`);
  if (s.waiting_for_approval > 0) parts.push(`${s.waiting_for_approval} waiting for approval`);
  if (s.user_present) parts.push('someone is at the machine');
  return parts.join('; ');
}

// firstLine is s up to its first line break.
export function firstLine(s) {
  if (!s) return '';
  const i = s.indexOf('\n');
  return i < 0 ? s : `${s.slice(0, i)} …`;
}

// osName is a card's or snapshot's OS in a few words.
export function osName(os) {
  if (!os) return '';
  return os.name || [os.id || os.family, os.version].filter(Boolean).join(' ');
}

// Rollout steps (wire.Step*), in the order a machine goes through them,
// and rollout states (wire.Rollout*).
export const STEPS = ['waiting', 'queued', 'installing', 'updated', 'rolled-back', 'failed', 'skipped', 'cancelled'];

// waveName is a rollout wave's name: 0 is the canary wave.
export function waveName(w) {
  return w === 0 ? 'canary' : `wave ${w}`;
}

// rolloutHash is the rollout view's address.
export function rolloutHash(id) {
  return `#/rollout/${encodeURIComponent(id)}`;
}

// agentTitle is the longer word on a card's agent (its readiness r): the
// version, the newest when it is behind, and the rollout it is in.
export function agentTitle(r) {
  if (!r) return '';
  const parts = [`agent ${r.agent_version || 'unknown'}`];
  if (r.agent_behind) parts.push(`behind ${r.newest_agent_version}`);
  const ref = r.rollout;
  if (ref) parts.push(`rollout ${ref.id} (${ref.version}, ${ref.state}): ${ref.step}, ${waveName(ref.wave)}${ref.detail ? `: ${ref.detail}` : ''}`);
  return parts.join('\n');
}

// updateWords says how a machine's last update went (wire.UpdateReport):
// "updated from 0.2.0 to 0.2.1", "rolled back from 0.2.2: exited with
// status 2 three times at start". The time is the caller's to add.
export function updateWords(u) {
  if (!u) return '';
  if (u.outcome === 'rolled-back') return `rolled back from ${u.to}${u.detail ? `: ${u.detail}` : ''}`;
  if (u.outcome === 'updated') return `updated from ${u.from} to ${u.to}`;
  return `${u.outcome}: ${u.from} to ${u.to}`;
}
