package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The fleet's metered-connection policy for agents. A policy applies to
// a scope: every machine of a client, or one machine, whose own policy
// wins over its client's. It is a control record like a client (last
// writer wins, a clear leaves a tombstone), and is also kept in memory:
// AgentPolicy runs on every presence hello and every check-in ack, so it
// must not read the file. Removing a machine or a client clears the
// policies set for it (offboard.go), on every broker.
//
// A broker that has not heard of a removal can still set a policy for
// what was removed, with a later clock. The removal wins all the same:
// where it is stored, such a policy is not imported (scopeGone), and
// where the policy is stored, the removal clears it when it arrives, a
// client's tombstone as a machine's removal record. A client created
// again can take a policy again; one that arrives while this broker
// still holds the old client's tombstone is left out until the new
// client's record comes, and anti-entropy brings it again after that.

// Scope prefixes of a PolicyRecord's key. Neither ':' nor anything after
// it can appear in a client name or a machine ID, so a scope reads one
// way only.
const (
	scopeClient  = "client:"
	scopeMachine = "machine:"
)

// ClientScope is the scope of client name's policy.
func ClientScope(name string) string { return scopeClient + name }

// MachineScope is the scope of machine id's own policy.
func MachineScope(id string) string { return scopeMachine + id }

// ParseScope splits a scope into the client or the machine ID it names;
// exactly one of the two is set.
func ParseScope(scope string) (client, machine string, err error) {
	switch {
	case strings.HasPrefix(scope, scopeClient):
		client = scope[len(scopeClient):]
		err = wire.ValidName("client", client)
	case strings.HasPrefix(scope, scopeMachine):
		machine = scope[len(scopeMachine):]
		err = validID("machine id", machine)
	default:
		err = fmt.Errorf("policy scope %q is not client:NAME or machine:ID", scope)
	}
	if err != nil {
		return "", "", err
	}
	return client, machine, nil
}

// PolicyRecord is the metered-connection policy of a scope, stored under
// KindPolicy and the scope ("client:NAME" or "machine:PEERID"). A
// tombstone keeps only the scope and its stamp.
type PolicyRecord struct {
	Scope string `json:"scope"`
	// OnMetered is wire.MeteredNormal or wire.MeteredQuiet.
	OnMetered string `json:"on_metered,omitempty"`
	// QuietCheckInSec is the quiet check-in cadence; zero means the
	// agent's own.
	QuietCheckInSec int64 `json:"quiet_check_in_s,omitempty"`
	// By and At say which technician set it, and when.
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
	Stamp
}

// Agent is the policy as agents are told it.
func (p *PolicyRecord) Agent() wire.AgentPolicy {
	return wire.AgentPolicy{OnMetered: p.OnMetered, QuietCheckInSec: p.QuietCheckInSec}
}

func (p *PolicyRecord) check(id string) error {
	if p.Scope != id {
		return fmt.Errorf("scope %q under key %q", p.Scope, id)
	}
	if err := p.Stamp.check(); err != nil {
		return err
	}
	if p.Deleted {
		if p.OnMetered != "" || p.QuietCheckInSec != 0 || p.By != "" || !p.At.IsZero() {
			return errors.New("a tombstone carries no policy")
		}
		return nil
	}
	if err := wire.ValidSetPolicy(p.Agent()); err != nil {
		return err
	}
	if p.At.IsZero() {
		return errors.New("the time it was set is zero")
	}
	return wire.ValidName("set by", p.By)
}

// mergePolicy: the later clock wins.
func mergePolicy(l, r *PolicyRecord) *PolicyRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// SetPolicy stores the policy of scope (ClientScope or MachineScope), set
// by technician by at now. The client or the machine must exist here. It
// returns the record as stored.
func (s *Store) SetPolicy(scope string, p wire.AgentPolicy, by string, now time.Time) (PolicyRecord, error) {
	var out PolicyRecord
	err := s.write(func(b *batch) error {
		rec := PolicyRecord{Scope: scope, OnMetered: p.OnMetered, QuietCheckInSec: p.QuietCheckInSec, By: by, At: now.UTC()}
		client, machine, err := ParseScope(scope)
		if err != nil {
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		if err := b.scopeExists(client, machine); err != nil {
			return err
		}
		k := Key{KindPolicy, scope}
		old, found, err := getControl(b.tx, k)
		if err != nil {
			return err
		}
		rec.Stamp = b.stamp()
		if st := stampOf(old); found && st.exists() {
			rec.Born = st.Born // the same record, written again
		}
		if err := rec.check(scope); err != nil {
			return refuse(fmt.Errorf("%w: policy: %v", ErrMalformed, err))
		}
		out = rec
		return b.putControl(k, &rec)
	})
	if err != nil {
		s.log.Warn("policy refused", "scope", scope, "on_metered", p.OnMetered, "quiet_check_in_s", p.QuietCheckInSec, "err", err)
		return PolicyRecord{}, err
	}
	return out, nil
}

// scopeExists refuses a policy for a client or a machine that is not
// stored (a machine removed from the fleet is not).
func (b *batch) scopeExists(client, machine string) error {
	if client != "" {
		switch ok, err := b.clientExists(client); {
		case err != nil:
			return err
		case !ok:
			return refuse(fmt.Errorf("client %q: %w", client, ErrNotFound))
		}
		return nil
	}
	if _, ok := b.machine(machine); !ok {
		return refuse(fmt.Errorf("machine %s: %w", machine, ErrNotFound))
	}
	return nil
}

// ClearPolicy deletes the policy of scope (a tombstone) and returns it as
// it was. A scope without a policy is ErrNotFound.
func (s *Store) ClearPolicy(scope string) (PolicyRecord, error) {
	var out PolicyRecord
	err := s.write(func(b *batch) error {
		if _, _, err := ParseScope(scope); err != nil {
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		k := Key{KindPolicy, scope}
		rec, found, err := getControl(b.tx, k)
		switch {
		case err != nil:
			return err
		case !found || !stampOf(rec).exists():
			return refuse(fmt.Errorf("no policy is set for %s: %w", scope, ErrNotFound))
		}
		out = *rec.(*PolicyRecord)
		return b.putControl(k, tombstone(rec, b.s.clock.tick()))
	})
	if err != nil {
		return PolicyRecord{}, err
	}
	return out, nil
}

// Policy returns the policy stored for scope, if one is set.
func (s *Store) Policy(scope string) (PolicyRecord, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.policies[scope]
	if !ok {
		return PolicyRecord{}, false
	}
	return *p, true
}

// Policies returns every policy set, sorted by scope.
func (s *Store) Policies() []PolicyRecord {
	s.mu.RLock()
	out := make([]PolicyRecord, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, *p)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b PolicyRecord) int { return strings.Compare(a.Scope, b.Scope) })
	return out
}

// AgentPolicy is the policy in force for machine m: its own if one is
// set, else its client's, else the empty policy (the agent's own flags
// decide). It reads memory only.
func (s *Store) AgentPolicy(m *Machine) wire.AgentPolicy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.policies[MachineScope(m.ID)]; ok {
		return p.Agent()
	}
	if p, ok := s.policies[ClientScope(m.Client)]; ok {
		return p.Agent()
	}
	return wire.AgentPolicy{}
}

// dropPolicy tombstones the policy of scope, if one is set, and reports
// whether it did. Removing a machine or a client calls it, so that a
// policy never outlives what it was set for: a client created again
// under the same name starts without one.
func (b *batch) dropPolicy(scope string) (bool, error) {
	k := Key{KindPolicy, scope}
	rec, found, err := getControl(b.tx, k)
	if err != nil || !found || !stampOf(rec).exists() {
		return false, err
	}
	return true, b.putControl(k, tombstone(rec, b.s.clock.tick()))
}

// scopeGone reports whether scope names a machine removed from the
// fleet or a client deleted here. A live policy imported for it stays
// out (importControl), as an imported record of a removed machine does,
// whatever its clock: the broker that set it, not having heard of the
// removal yet, clears it when the removal reaches it (dropMachine, or
// importControl for a client's tombstone), and that clearing replicates.
// A client with no record here is not gone: its policy can arrive before
// it does.
func (b *batch) scopeGone(scope string) (bool, error) {
	client, machine, err := ParseScope(scope)
	if err != nil {
		return false, err
	}
	if machine != "" {
		_, removed, err := b.removal(machine)
		return removed, err
	}
	c, found, err := b.client(client)
	return found && !c.exists(), err
}

// notePolicy records, for publish, that the batch wrote the policy of
// scope: rec, or nothing left (nil, or a tombstone).
func (b *batch) notePolicy(scope string, rec *PolicyRecord) {
	if b.policies == nil {
		b.policies = map[string]*PolicyRecord{}
	}
	if rec != nil {
		c := *rec // the caller's record may change after the commit
		rec = &c
	}
	b.policies[scope] = rec
}

// publishPoliciesLocked makes a committed batch's policies visible. The
// caller holds s.mu.
func (s *Store) publishPoliciesLocked(b *batch) {
	for scope, p := range b.policies {
		if p == nil || p.Deleted {
			delete(s.policies, scope)
		} else {
			s.policies[scope] = p
		}
	}
}
