package broker

import (
	"context"

	"github.com/readymesh/readymesh/broker/policy"
	"github.com/readymesh/readymesh/peer/wire"
)

// Metered policies: the policy room (package policy) sets, clears and
// lists the fleet's metered-connection policies for agents, which the
// store keeps and replicates; check-in acks (and the presence hello
// reply) carry each machine's.

// policyOps are the metered-policy operations: every technician lists
// the policies of the clients and machines it may see; only admins set
// and clear them.
func policyOps(r *rooms) (anyone, admin map[string]opFunc) {
	room := policy.New(policy.Config{Logger: r.logger, Now: r.now},
		policy.Deps{Store: r.store, Audit: r.audit, Replication: r.repl})
	anyone = map[string]opFunc{
		wire.OpPolicyList: func(_ context.Context, c *call) (any, *wire.Error) { return room.List(c.t) },
	}
	admin = map[string]opFunc{
		wire.OpPolicySet:   asTech(room.Set),
		wire.OpPolicyClear: asTech(room.Clear),
	}
	return anyone, admin
}
