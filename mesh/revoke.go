package mesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Revoking a technician on the agent. A broker tells the agent when a
// technician it serves is disabled or removed (package sessiond carries
// the message); the agent ends that technician's sessions, pending and
// live, and refuses the grants it was issued before: a grant is valid for
// up to a minute after it is signed, which is long after the broker
// stopped issuing new ones.

// ErrGrantRevoked is a grant for a technician whose access was revoked
// after the grant was issued.
var ErrGrantRevoked = errors.New("grant: technician revoked")

// revokedSkew is how much later than the agent's clock the issuing
// broker's clock may be: grants issued up to this long after the agent
// heard of a revocation are still refused. A technician enabled again
// within it waits that long for its next session.
const revokedSkew = 30 * time.Second

// revokedKeep is how long a revocation is remembered: far longer than
// any grant lives.
const revokedKeep = time.Hour

// maxRevoked bounds the revocations remembered; past it the oldest go
// (a grant issued before a revocation that old has long expired).
const maxRevoked = 1024

// Revoke ends every session of technician tech, offered or live, saying
// reason to it, and refuses grants issued to tech before now. It returns
// how many sessions it ended.
func (l *Listener) Revoke(tech peer.ID, reason string) int {
	now := l.cfg.Now()
	l.mu.Lock()
	if l.revoked == nil {
		l.revoked = map[peer.ID]time.Time{}
	}
	l.pruneRevokedLocked(now)
	l.revoked[tech] = now
	n := 0
	for id, p := range l.pending {
		if p.tech == tech {
			p.cancel()
			if _, live := l.active[id]; !live {
				n++ // offered, not claimed yet
			}
		}
	}
	for _, a := range l.active {
		if a.grant.Technician == tech.String() {
			a.end(reason)
			n++
		}
	}
	l.mu.Unlock()
	l.log.Info("technician revoked: sessions ended", "technician", tech, "sessions", n, "reason", reason)
	return n
}

// pruneRevokedLocked forgets revocations older than revokedKeep, and the
// oldest past maxRevoked.
func (l *Listener) pruneRevokedLocked(now time.Time) {
	var oldest peer.ID
	var oldestAt time.Time
	for id, at := range l.revoked {
		if now.Sub(at) > revokedKeep {
			delete(l.revoked, id)
			continue
		}
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = id, at
		}
	}
	if len(l.revoked) >= maxRevoked {
		delete(l.revoked, oldest)
	}
}

// checkRevoked refuses a grant issued to a revoked technician before (or
// within revokedSkew after) the agent heard of the revocation.
func (l *Listener) checkRevoked(tech peer.ID, issued time.Time) error {
	l.mu.Lock()
	at, ok := l.revoked[tech]
	l.mu.Unlock()
	if ok && issued.Before(at.Add(revokedSkew)) {
		return fmt.Errorf("%w: %s was revoked at %s", ErrGrantRevoked, tech, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// EndAll ends every session, offered or live, saying reason, and goes on
// listening: the agent's machine was removed from the fleet.
func (l *Listener) EndAll(reason string) {
	l.mu.Lock()
	for _, p := range l.pending {
		p.cancel()
	}
	for _, a := range l.active {
		a.end(reason)
	}
	l.mu.Unlock()
}

// end closes a live session, telling a QUIC peer why.
func (a *agentSession) end(reason string) {
	if a.conn == nil {
		a.rtc.Close()
		return
	}
	msg := "session ended: " + reason
	a.conn.CloseWithError(0, msg[:min(len(msg), 512)])
}
