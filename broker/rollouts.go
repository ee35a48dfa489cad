package broker

import (
	"context"

	"github.com/readymesh/readymesh/broker/rollout"
	"github.com/readymesh/readymesh/peer/wire"
)

// Rollouts: the rollout room (package rollout) takes a release to the
// fleet through update jobs. It is built before the queue, which asks it
// before it sends an update job; it kicks the alerts when a rollout
// pauses or resumes, tells the console's streams, and adds to each machine card the rollout the
// machine is in.

// newRollouts builds the rollout room. releases finds published
// releases (the store).
func newRollouts(b *Broker, releases rollout.Releases) *rollout.Room {
	c := &b.cfg
	var members rollout.Members // nil when the broker runs alone
	if b.cluster != nil {
		members = b.cluster
	}
	return rollout.New(rollout.Config{Name: c.Name, Policy: c.Readiness, Logger: b.log, Now: c.Now},
		rollout.Deps{Store: b.store, Releases: releases, Reach: b.reach, Members: members, Audit: b.audit,
			Replicated: b.repl.Written, Changed: func() {
				if b.alerts != nil { // built after the room
					b.alerts.Kick()
				}
				// Cards carry the rollout a machine is in: the console
				// looks again even when no record was written.
				b.changes.Notify()
			}})
}

// rolloutOps are the rollout operations: every technician lists and
// reads the rollouts that hold machines it may see; only admins start
// and change them.
func rolloutOps(room *rollout.Room) (anyone, admin map[string]opFunc) {
	anyone = map[string]opFunc{
		wire.OpRolloutList:   func(_ context.Context, c *call) (any, *wire.Error) { return room.List(c.t) },
		wire.OpRolloutStatus: asTech(room.Status),
	}
	admin = map[string]opFunc{
		wire.OpRolloutStart:  asTech(room.Start),
		wire.OpRolloutPause:  asTech(room.Pause),
		wire.OpRolloutResume: asTech(room.Resume),
		wire.OpRolloutAbort:  asTech(room.Abort),
	}
	return anyone, admin
}
