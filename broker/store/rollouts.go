package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// MaxRolloutMachines bounds the machines one rollout targets.
const MaxRolloutMachines = 100_000

// RolloutRecord is a rollout: its plan, its state, and the machines of
// each wave, fixed when it started. Each machine's progress is its update
// job (JobRecord.Update names the rollout) and its check-ins, so a step
// does not rewrite this record. Stored under KindRollout and the ID.
type RolloutRecord struct {
	ID              string    `json:"id"`
	Version         string    `json:"version"`
	Clients         []string  `json:"clients,omitempty"`
	All             bool      `json:"all,omitempty"`
	CanaryPct       int       `json:"canary_pct"`
	HealthWindowSec int       `json:"health_window_s"`
	MaxParallel     int       `json:"max_parallel"`
	FailPct         int       `json:"fail_pct"`
	Rollback        bool      `json:"rollback,omitempty"`
	RequiresConsent bool      `json:"requires_consent,omitempty"`
	State           string    `json:"state"`
	PausedReason    string    `json:"paused_reason,omitempty"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	// Home is the broker that started the rollout and drives it while it
	// is alive.
	Home string `json:"home"`
	// Canary and Rest are the machine IDs of wave 0 and wave 1.
	Canary []string `json:"canary,omitempty"`
	Rest   []string `json:"rest,omitempty"`
	// WaveStarted is when each wave began (zero until it does).
	WaveStarted [2]time.Time `json:"wave_started"`
	Stamp
}

var rolloutStates = map[string]bool{wire.RolloutCanary: true, wire.RolloutRolling: true, wire.RolloutPaused: true,
	wire.RolloutDone: true, wire.RolloutAborted: true}

func (r *RolloutRecord) check(id string) error {
	switch {
	case r.ID != id:
		return fmt.Errorf("id %q under key %q", r.ID, id)
	case r.Deleted:
		return nil
	case !rolloutStates[r.State]:
		return fmt.Errorf("unknown state %q", r.State)
	case len(r.Canary)+len(r.Rest) > MaxRolloutMachines:
		return fmt.Errorf("%d machines, limit %d", len(r.Canary)+len(r.Rest), MaxRolloutMachines)
	case len(r.PausedReason) > maxText:
		return errors.New("paused reason is too long")
	case r.CreatedAt.IsZero():
		return errors.New("creation time is zero")
	}
	a := wire.RolloutArgs{Version: r.Version, Clients: r.Clients, All: r.All, CanaryPct: r.CanaryPct,
		HealthWindowSec: r.HealthWindowSec, MaxParallel: r.MaxParallel, FailPct: r.FailPct}
	if err := a.Validate(); err != nil {
		return err
	}
	for _, m := range append(r.Canary[:len(r.Canary):len(r.Canary)], r.Rest...) {
		if err := validID("machine id", m); err != nil {
			return err
		}
	}
	if err := wire.ValidName("created by", r.CreatedBy); err != nil {
		return err
	}
	if err := wire.ValidName("home broker", r.Home); err != nil {
		return err
	}
	return r.Stamp.check()
}

// mergeRollout: the later clock wins.
func mergeRollout(l, r *RolloutRecord) *RolloutRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}
