package session

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// policyTimeout bounds carrying a consent policy to the agent.
const policyTimeout = 15 * time.Second

// SetConsent runs OpConsentSet: a technician with admin rights sets a
// machine's consent policy. The agent holds it (and reports it in
// readiness at its next check-in, which it makes at once), so the machine
// must be reachable through this broker now.
func (s *Service) SetConsent(t *wire.Technician, a *wire.ConsentPolicyArgs) (map[string]string, *wire.Error) {
	m, werr := scope.Find(s.deps.Store, t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	name := m.Client + "/" + m.Name
	if !s.deps.Reach.Online(m.ID) {
		if broker, ok := s.deps.Reach.Elsewhere(m.ID); ok {
			return nil, wire.Errorf(wire.CodeUnavailable, "%s is connected to broker %s: set its policy there", name, broker)
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%s is not reachable now; its policy was not changed", name)
	}
	id, err := peer.Decode(m.ID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	a.By, a.Machine = t.Name, ""
	ctx, cancel := context.WithTimeout(context.Background(), policyTimeout)
	defer cancel()
	var r wire.Reply
	if err := bridge.Call(ctx, s.deps.Host, id, wire.ProtoPolicy, a, &r, wire.MaxControl); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "could not reach %s: %v", name, err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	s.cfg.Logger.Info("consent policy set", "machine", name, "policy", a.Policy, "window_s", a.WindowSec, "by", t.Name)
	s.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditPolicy, Technician: t.Name, Machine: name,
		Detail: fmt.Sprintf("policy %s, window %ds", a.Policy, a.WindowSec)})
	return map[string]string{"machine": name, "policy": a.Policy}, nil
}
