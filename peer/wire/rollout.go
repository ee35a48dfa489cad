package wire

import (
	"errors"
	"time"
)

// Rollout operations (ProtoTech). A rollout takes one release to a set of
// machines in two waves, the canary wave first, through update jobs.
const (
	OpRolloutStart  = "rollout.start"  // RolloutArgs → Rollout (admin)
	OpRolloutList   = "rollout.list"   // no args → []Rollout (without machines)
	OpRolloutStatus = "rollout.status" // RolloutIDArgs → Rollout with its machines
	OpRolloutPause  = "rollout.pause"  // RolloutIDArgs → Rollout (admin)
	OpRolloutResume = "rollout.resume" // RolloutIDArgs → Rollout (admin)
	OpRolloutAbort  = "rollout.abort"  // RolloutIDArgs → Rollout (admin)
)

// Rollout states.
const (
	RolloutCanary  = "canary"  // the canary wave is updating or within its health window
	RolloutRolling = "rolling" // the rest is updating
	RolloutPaused  = "paused"  // by an admin, or by failures above the threshold (PausedReason)
	RolloutDone    = "done"    // every machine updated or failed
	RolloutAborted = "aborted" // by an admin: queued updates cancelled
)

// Rollout machine steps (RolloutMachine.Step).
const (
	StepWaiting    = "waiting"     // in a later wave
	StepQueued     = "queued"      // its update job waits for the machine (offline, consent)
	StepInstalling = "installing"  // the agent took the update and is restarting into it
	StepUpdated    = "updated"     // checked in on the new version
	StepRolledBack = "rolled-back" // the agent put the previous binary back
	StepFailed     = "failed"      // refused, or silent past the health window
	StepSkipped    = "skipped"     // already on the version, or too old for it (MinAgent)
	StepCancelled  = "cancelled"   // the rollout was aborted before it ran
)

// AlertRolloutPaused is the readiness alert a rollout opens when failures
// pause it; it resolves when the rollout is resumed or aborted. Its
// Machine is empty and its ID is "rollout/ID".
const AlertRolloutPaused = "rollout-paused"

// RolloutArgs starts a rollout.
type RolloutArgs struct {
	Version string   `json:"version"`
	Clients []string `json:"clients,omitempty"`
	All     bool     `json:"all,omitempty"`
	// CanaryPct is the share of machines in the canary wave, 0–100 (at
	// least one machine when above zero). Zero means no canary wave.
	CanaryPct int `json:"canary_pct"`
	// HealthWindowSec is how long an updated agent has to check in on
	// the new version. Zero means 15 minutes.
	HealthWindowSec int `json:"health_window_s,omitempty"`
	// MaxParallel bounds the machines updating at once. Zero means 50.
	MaxParallel int `json:"max_parallel,omitempty"`
	// FailPct pauses the rollout once more than this share of wave 1's
	// started machines failed or rolled back, 0–100: 0 pauses at the
	// first failure. Nil (the field absent) means 10. The canary wave
	// pauses on any failure whatever the threshold.
	FailPct *int `json:"fail_pct,omitempty"`
	// Rollback allows the release to be older than the agents: an
	// explicit rollback.
	Rollback bool `json:"rollback,omitempty"`
	// RequiresConsent asks the person at each machine, as for a job.
	RequiresConsent bool `json:"requires_consent,omitempty"`
}

// Validate implements the Decode contract.
func (a *RolloutArgs) Validate() error {
	if err := ValidVersion(a.Version); err != nil {
		return err
	}
	if a.All == (len(a.Clients) > 0) {
		return errors.New("select machines: --client C (repeatable) or --all")
	}
	for _, c := range a.Clients {
		if err := ValidName("client", c); err != nil {
			return err
		}
	}
	switch {
	case a.CanaryPct < 0 || a.CanaryPct > 100:
		return errors.New("canary must be 0% to 100%")
	case a.HealthWindowSec != 0 && (a.HealthWindowSec < 10 || a.HealthWindowSec > 7*24*3600):
		return errors.New("health window must be between 10s and 7 days")
	case a.MaxParallel < 0 || a.MaxParallel > 10_000:
		return errors.New("max-parallel must be between 1 and 10000")
	case a.FailPct != nil && (*a.FailPct < 0 || *a.FailPct > 100):
		return errors.New("fail threshold must be 0% to 100%")
	}
	return nil
}

// RolloutIDArgs names a rollout (its ID or first digits).
type RolloutIDArgs struct {
	ID string `json:"id"`
}

// Validate implements the Decode contract.
func (a *RolloutIDArgs) Validate() error {
	if len(a.ID) < 4 || len(a.ID) > 32 {
		return errors.New("rollout: give its ID (at least its first 4 characters)")
	}
	return nil
}

// Rollout is a rollout as technicians see it.
type Rollout struct {
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
	Updated         time.Time `json:"updated_at"`
	// Counts by step.
	Counts map[string]int `json:"counts"`
	// Machines is each machine's step; only in rollout.status.
	Machines []RolloutMachine `json:"machines,omitempty"`
}

// RolloutMachine is one machine's place in a rollout.
type RolloutMachine struct {
	MachineID string    `json:"machine_id"`
	Machine   string    `json:"machine"` // client/name
	Wave      int       `json:"wave"`    // 0 canary, 1 the rest
	Step      string    `json:"step"`
	From      string    `json:"from,omitempty"` // its agent version when the rollout reached it
	Job       string    `json:"job,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Updated   time.Time `json:"updated_at,omitzero"`
}

// RolloutRef is what a machine card says of the rollout a machine is in.
type RolloutRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	State   string `json:"state"` // the rollout's
	Step    string `json:"step"`  // the machine's
	Wave    int    `json:"wave"`
	Detail  string `json:"detail,omitempty"`
}
