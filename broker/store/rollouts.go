package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

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
	// PausedBy is the admin who paused the rollout; empty when failures
	// paused it (which is what opens the rollout-paused alert).
	PausedBy string    `json:"paused_by,omitempty"`
	PausedAt time.Time `json:"paused_at,omitzero"`
	// Accepted is each wave's tally when an admin last resumed the
	// rollout: failures up to then were accepted, and the thresholds
	// count only what happened since.
	Accepted [2]Tally `json:"accepted"`
	// AcceptedFailed are the machines that had failed or rolled back when
	// an admin last resumed the rollout. Failures are counted outside
	// this set: a tally alone would let a late recovery among them hide
	// a new failure.
	AcceptedFailed []string `json:"accepted_failed,omitempty"`
	// Final is each client's machines by step when the rollout ended, so
	// listings need not work out the steps of rollouts that ended (a
	// machine that left the fleet counts under client "").
	Final map[string]map[string]int `json:"final,omitempty"`
	// Ended is when the rollout became done or aborted.
	Ended time.Time `json:"ended,omitzero"`
	// Changed is when the record was last written.
	Changed time.Time `json:"changed"`
	Stamp
}

// Tally counts a wave's machines that started (their update job was
// sent) and that failed or rolled back.
type Tally struct {
	Started int `json:"started"`
	Failed  int `json:"failed"`
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
		HealthWindowSec: r.HealthWindowSec, MaxParallel: r.MaxParallel, FailPct: &r.FailPct}
	if err := a.Validate(); err != nil {
		return err
	}
	if err := checkWaves(r.Canary, r.Rest); err != nil {
		return err
	}
	if err := checkFinal(r.Final, r.AcceptedFailed); err != nil {
		return err
	}
	if err := wire.ValidName("created by", r.CreatedBy); err != nil {
		return err
	}
	if r.PausedBy != "" {
		if err := wire.ValidName("paused by", r.PausedBy); err != nil {
			return err
		}
	}
	if err := wire.ValidName("home broker", r.Home); err != nil {
		return err
	}
	return r.Stamp.check()
}

// checkWaves checks the machine IDs of both waves: valid, each once.
func checkWaves(canary, rest []string) error {
	seen := make(map[string]bool, len(canary)+len(rest))
	for _, wave := range [][]string{canary, rest} {
		for _, m := range wave {
			if err := validID("machine id", m); err != nil {
				return err
			}
			if seen[m] {
				return fmt.Errorf("machine %s is in the rollout twice", m)
			}
			seen[m] = true
		}
	}
	return nil
}

// rolloutSteps are the steps final counts may name.
var rolloutSteps = map[string]bool{wire.StepWaiting: true, wire.StepQueued: true, wire.StepInstalling: true,
	wire.StepUpdated: true, wire.StepRolledBack: true, wire.StepFailed: true, wire.StepSkipped: true, wire.StepCancelled: true}

// checkFinal checks the final counts and the accepted failures: bounded,
// known steps, valid IDs.
func checkFinal(final map[string]map[string]int, accepted []string) error {
	if len(final) > MaxRolloutMachines || len(accepted) > MaxRolloutMachines {
		return errors.New("final counts or accepted failures over the machine limit")
	}
	for client, counts := range final {
		if client != "" {
			if err := wire.ValidName("client", client); err != nil {
				return err
			}
		}
		for step, n := range counts {
			if !rolloutSteps[step] || n < 0 || n > MaxRolloutMachines {
				return fmt.Errorf("final count %s=%d", step, n)
			}
		}
	}
	for _, m := range accepted {
		if err := validID("accepted machine id", m); err != nil {
			return err
		}
	}
	return nil
}

// rolloutRank orders copies for the merge: an ended rollout never comes
// back to life because an older copy (a resume racing an abort) had a
// later clock.
func rolloutRank(r *RolloutRecord) int {
	switch {
	case r.Deleted:
		return 3
	case r.State == wire.RolloutAborted:
		return 2
	case r.State == wire.RolloutDone:
		return 1
	}
	return 0
}

// mergeRollout: the further rank wins (see rolloutRank), carrying the
// later of the two clocks (see laterClock); equally far along, the later
// clock.
func mergeRollout(l, r *RolloutRecord) *RolloutRecord {
	if lr, rr := rolloutRank(l), rolloutRank(r); lr != rr {
		w, o := l, r
		if rr > lr {
			w, o = r, l
		}
		out := *w
		out.Stamp = laterClock(w.Stamp, o.Stamp)
		return &out
	}
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// laterClock is w's stamp with the later clock of w and o. A copy that
// wins a merge by how far along it is may carry the older clock; given
// the later one, it is what the other broker asks for next (anti-entropy
// asks only for copies with a newer clock, or a different one at the
// same clock), so both converge on it.
func laterClock(w, o Stamp) Stamp {
	if o.Clock.After(w.Clock) {
		w.Clock = o.Clock
	}
	return w
}

// CreateRollout stores a new rollout.
func (s *Store) CreateRollout(r RolloutRecord) error {
	return s.write(func(b *batch) error {
		k := Key{KindRollout, r.ID}
		if _, found, err := getControl(b.tx, k); err != nil {
			return err
		} else if found {
			return refuse(fmt.Errorf("rollout %s: %w", r.ID, ErrExists))
		}
		r.Stamp = b.stamp()
		if err := r.check(r.ID); err != nil {
			return refuse(fmt.Errorf("%w: rollout: %v", ErrMalformed, err))
		}
		return b.putControl(k, &r)
	})
}

// UpdateRollout changes a rollout with f, which sees the stored copy and
// may refuse. An ended rollout (done or aborted) cannot become active
// again.
func (s *Store) UpdateRollout(id string, f func(*RolloutRecord) error) (RolloutRecord, error) {
	var out RolloutRecord
	err := s.write(func(b *batch) error {
		k := Key{KindRollout, id}
		rec, found, err := getControl(b.tx, k)
		if err != nil {
			return err
		}
		old := rec.(*RolloutRecord)
		if !found || old.Deleted {
			return refuse(fmt.Errorf("rollout %s: %w", id, ErrNotFound))
		}
		r := *old
		if err := f(&r); err != nil {
			return refuse(err)
		}
		if rolloutRank(&r) < rolloutRank(old) {
			return refuse(fmt.Errorf("rollout %s is %s: it cannot become %s", id, old.State, r.State))
		}
		if err := r.check(id); err != nil {
			return refuse(fmt.Errorf("%w: rollout: %v", ErrMalformed, err))
		}
		r.Stamp.Clock = b.s.clock.tick()
		out = r
		return b.putControl(k, &r)
	})
	return out, err
}

// Rollout returns one rollout by its full ID.
func (s *Store) Rollout(id string) (RolloutRecord, bool, error) {
	var r RolloutRecord
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bktRollouts), []byte(id), &r)
		return err
	})
	if err != nil {
		return RolloutRecord{}, false, fmt.Errorf("rollout %s: %w", id, err)
	}
	return r, found && !r.Deleted, nil
}

// Rollouts lists the rollouts that keep accepts (nil keeps all), oldest
// first.
func (s *Store) Rollouts(keep func(*RolloutRecord) bool) ([]RolloutRecord, error) {
	var out []RolloutRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRollouts).ForEach(func(k, raw []byte) error {
			var r RolloutRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("rollout %s: %w", k, err)
			}
			if !r.Deleted && (keep == nil || keep(&r)) {
				out = append(out, r)
			}
			return nil
		})
	})
	sortRollouts(out)
	return out, err
}

// sortRollouts orders rollouts oldest first.
func sortRollouts(out []RolloutRecord) {
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
}

// RolloutsWhere lists the rollouts whose ID and state keep accepts,
// oldest first. A record keep refuses costs a read of the few fields
// before its machine lists (see rolloutHead), not a decode of them: the
// driver calls this every second, and ended rollouts of 100,000
// machines must cost it nothing.
func (s *Store) RolloutsWhere(keep func(id, state string) bool) ([]RolloutRecord, error) {
	var out []RolloutRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRollouts).ForEach(func(k, raw []byte) error {
			if id, state, ok := rolloutHead(raw); ok && !keep(id, state) {
				return nil
			}
			var r RolloutRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("rollout %s: %w", k, err)
			}
			if !r.Deleted && keep(r.ID, r.State) {
				out = append(out, r)
			}
			return nil
		})
	})
	sortRollouts(out)
	return out, err
}

// rolloutHead reads a stored rollout's ID and state from the start of
// its JSON, which holds them before the machine lists (the field order
// of RolloutRecord); ok is false when it cannot tell.
func rolloutHead(raw []byte) (id, state string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", "", false
	}
	for range 32 { // the fields before "state"; more means another layout
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			return "", "", false
		}
		if key != "id" && key != "state" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return "", "", false
			}
			continue
		}
		t, err = dec.Token()
		v, isStr := t.(string)
		if err != nil || !isStr {
			return "", "", false
		}
		if key == "id" {
			id = v
			continue
		}
		if id == "" {
			return "", "", false
		}
		return id, v, true
	}
	return "", "", false
}

// Active reports whether the rollout still moves: canary, rolling or
// paused.
func (r *RolloutRecord) Active() bool { return rolloutRank(r) == 0 }
