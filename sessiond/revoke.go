package sessiond

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

// Offboarding as the agent sees it. A broker tells the agent two things:
// that a technician's access ended (a revocation over wire.ProtoRevoke:
// the agent ends that technician's sessions and refuses the grants it was
// issued before), and that this machine was removed from the fleet (a
// refusal with wire.CodeRemoved, on its next bridge or check-in: the agent
// says so loudly, ends every session and stops asking, bar one try an
// hour in case the removal is undone by restoring a broker's backup).

// removedRetry is how often a removed agent tries its brokers again.
const removedRetry = time.Hour

// removedError is a broker's refusal of a machine removed from the fleet;
// msg says by whom and when.
type removedError struct{ msg string }

func (e *removedError) Error() string { return "removed from the fleet: " + e.msg }

// removedFromFleet logs the removal, ends the live sessions and returns
// how long to wait before trying again.
func (a *Agent) removedFromFleet(e *removedError) time.Duration {
	a.log.Error("this machine was removed from the fleet: the broker refuses its key; uninstall the agent "+
		"(sessiond uninstall --purge) or enrol it again with a new token and a new state directory",
		"reason", e.msg, "retry_in", removedRetry)
	if a.sessions != nil {
		for _, s := range a.sessions.Sessions() {
			a.log.Info("ending a session: the machine was removed", "session", s.Session, "technician", s.Technician)
		}
		a.sessions.EndAll("the machine was removed from the fleet: " + e.msg)
	}
	return removedRetry
}

// handleRevoke takes a technician revocation from a broker this agent
// trusts and ends that technician's sessions.
func (a *Agent) handleRevoke(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if !a.trustedBroker(s.Conn().RemotePeer()) {
		wire.Write(s, &wire.Reply{Error: &wire.Error{Code: wire.CodeForbidden, Message: "only this agent's brokers may revoke technicians"}})
		return
	}
	var r wire.Revocation
	if err := wire.NewReader(s).Read(wire.MaxControl, &r); err != nil {
		a.log.Warn("bad revocation from a broker", "broker", s.Conn().RemotePeer(), "err", err)
		wire.Write(s, &wire.Reply{Error: &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}})
		return
	}
	ended := 0
	for _, k := range r.Keys {
		id, _ := peer.Decode(k) // Validate checked it
		if a.sessions != nil {
			ended += a.sessions.Revoke(id, r.Reason)
		}
	}
	a.log.Info("technician revoked", "technician", r.Technician, "reason", r.Reason, "sessions_ended", ended)
	wire.Write(s, &wire.Reply{})
}
