package replicate

import (
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
)

// Replication lag, as the broker's metrics report it. What this broker
// can know for certain is when it last held every record another broker
// held: after a push/pull exchange whose digests matched, or after the
// pull of the buckets in which they differed completed with nothing
// deferred. From that moment, as of the peer's digest, nothing of the
// peer's was missing here. The lag with a peer is the time since then;
// Lag reports the longest over the other live brokers.
//
// It is an upper bound on how stale this broker's copy of the peer's
// records can be, not the staleness itself: notices bring most writes
// within a gossip round, and the bound only tightens at each exchange
// with that peer. A healthy cluster keeps it under a few push/pull
// intervals (each broker exchanges with one random peer per interval, so
// a pair of brokers in a cluster of n meets about every (n-1)/2
// intervals); it grows without bound while pulls from a peer fail or
// the two brokers cannot reach each other.

// lagTable remembers, for each broker this one has exchanged digests
// with, when it first did and when it last held all that broker held.
// Its zero value is ready to use; it is safe for concurrent use.
type lagTable struct {
	mu    sync.Mutex
	peers map[string]*peerSync // mu guards; member name → its sync times
}

// peerSync is what the lagTable knows of one peer.
type peerSync struct {
	first  time.Time // when its first digest arrived (or Lag first saw it alive)
	synced time.Time // as of when this broker last held all it held; zero: never
}

// peerLocked returns name's entry, made with first = at if missing.
func (t *lagTable) peerLocked(name string, at time.Time) *peerSync {
	if t.peers == nil {
		t.peers = map[string]*peerSync{}
	}
	p := t.peers[name]
	if p == nil {
		p = &peerSync{first: at}
		t.peers[name] = p
	}
	return p
}

// heard records a digest from name at at.
func (t *lagTable) heard(name string, at time.Time) {
	t.mu.Lock()
	t.peerLocked(name, at)
	t.mu.Unlock()
}

// synced records that this broker held every record name held as of
// asOf. An older asOf than the one known changes nothing.
func (t *lagTable) synced(name string, asOf time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(name, asOf)
	if asOf.After(p.synced) {
		p.synced = asOf
	}
}

// longest returns the longest lag at now over the brokers named: the time
// since each was last synced, or since it was first heard of if never.
// It forgets brokers not named (dead, left or forgotten: their entries
// start afresh if they return), so the table holds at most the live
// members.
func (t *lagTable) longest(names []string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := make(map[string]*peerSync, len(names))
	var worst time.Duration
	for _, name := range names {
		p := t.peerLocked(name, now)
		since := p.synced
		if since.IsZero() {
			since = p.first
		}
		worst = max(worst, now.Sub(since))
		keep[name] = p
	}
	t.peers = keep
	return worst
}

// Lag is the replication lag (see above): over the other alive and
// suspect brokers of the cluster, the longest time since this broker
// last held every record that broker held. ok is false when the broker
// runs alone; with no other live broker the lag is zero.
func (r *Replicator) Lag() (lag time.Duration, ok bool) {
	if r.cluster == nil {
		return 0, false
	}
	var live []string
	local := r.cluster.LocalName()
	for _, m := range r.cluster.Members() {
		if m.Name != local && (m.State == cluster.StateAlive || m.State == cluster.StateSuspect) {
			live = append(live, m.Name)
		}
	}
	return r.lag.longest(live, r.cfg.Now()), true
}

// tracks reports whether digests from m count towards the lag: a known
// member of the cluster other than this broker.
func (r *Replicator) tracks(m cluster.Member) bool {
	return r.cluster != nil && m.Meta.PeerID != "" && m.Name != r.cluster.LocalName()
}
