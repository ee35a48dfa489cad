package wire

import (
	"errors"
	"fmt"
	"time"
)

// The fleet's metered-connection policy for agents, set by client or by
// machine (a machine's own policy wins over its client's). Brokers store
// and replicate it, and tell each agent its policy (AgentPolicy) in the
// presence hello reply and in check-in acks.
const (
	OpPolicySet   = "policy.set"   // PolicyArgs → Policy (admin)
	OpPolicyClear = "policy.clear" // PolicyScope → Policy, as it was (admin)
	OpPolicyList  = "policy.list"  // no args → []Policy, the ones the technician may see
)

// AuditMeteredPolicy is the audit event of a policy set or cleared.
const AuditMeteredPolicy = "metered.policy"

// Bounds of a quiet check-in cadence (AgentPolicy.QuietCheckInSec) set by
// policy: often enough that a quiet machine stays known, seldom enough
// that quiet means quiet on a metered link.
const (
	MinQuietCheckInSec = 15 * 60
	MaxQuietCheckInSec = 7 * 24 * 3600
)

// PolicyScope names what a policy applies to: every machine of a client,
// or one machine. Exactly one of the two is set.
type PolicyScope struct {
	Client string `json:"client,omitempty"`
	// Machine is a machine ID, name or client/name, as other operations
	// take machines.
	Machine string `json:"machine,omitempty"`
}

// Validate implements the Decode contract.
func (s *PolicyScope) Validate() error {
	switch {
	case s.Client != "" && s.Machine != "":
		return errors.New("policy: name a client or a machine, not both")
	case s.Client != "":
		return ValidName("client", s.Client)
	case s.Machine == "":
		return errors.New("policy: name a client or a machine")
	case len(s.Machine) > 200:
		return fmt.Errorf("policy: machine is %d bytes, over 200", len(s.Machine))
	}
	return nil
}

// PolicyArgs sets the policy of a scope.
type PolicyArgs struct {
	PolicyScope
	// OnMetered is MeteredNormal or MeteredQuiet; QuietCheckInSec is zero
	// (the agent's own cadence) or between MinQuietCheckInSec and
	// MaxQuietCheckInSec, and only with MeteredQuiet.
	AgentPolicy
}

// Validate implements the Decode contract.
func (a *PolicyArgs) Validate() error {
	if err := a.PolicyScope.Validate(); err != nil {
		return err
	}
	return ValidSetPolicy(a.AgentPolicy)
}

// ValidSetPolicy checks a policy as a technician may set it: stricter
// than AgentPolicy.Validate, which also takes the empty policy.
func ValidSetPolicy(p AgentPolicy) error {
	switch p.OnMetered {
	case MeteredNormal, MeteredQuiet:
	case "":
		return errors.New("policy: on_metered is empty: say normal or quiet")
	default:
		return fmt.Errorf("policy: on_metered %q is not normal or quiet", p.OnMetered)
	}
	switch s := p.QuietCheckInSec; {
	case s == 0:
	case p.OnMetered != MeteredQuiet:
		return errors.New("policy: a quiet check-in interval applies only with on_metered quiet")
	case s < MinQuietCheckInSec || s > MaxQuietCheckInSec:
		return fmt.Errorf("policy: quiet check-in interval %s is outside 15m to 7 days (168h)", time.Duration(s)*time.Second)
	}
	return nil
}

// Policy is a stored policy as operations answer it.
type Policy struct {
	// Scope is "client:NAME" or "machine:PEERID".
	Scope  string `json:"scope"`
	Client string `json:"client"`
	// Machine is the machine's client/name, and MachineID its peer ID,
	// for a machine's own policy. Machine is empty for a machine the
	// answering broker no longer knows (it was removed).
	Machine   string `json:"machine,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
	AgentPolicy
	SetBy string    `json:"set_by"`
	SetAt time.Time `json:"set_at"`
}

// Name is how the policy's scope reads to a person: the client's name,
// or the machine's client/name (its ID when it is unknown).
func (p *Policy) Name() string {
	switch {
	case p.MachineID == "":
		return "client " + p.Client
	case p.Machine != "":
		return "machine " + p.Machine
	}
	return "machine " + p.MachineID
}
