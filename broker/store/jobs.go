package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// Job states. A job only ever moves forward: queued, then running, then
// one of the ends; copies of a job merge to the furthest state (see
// mergeJob), so a job that ran is never reported queued or cancelled by a
// broker that missed it.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobCancelled = "cancelled"
	JobExpired   = "expired"
	JobDone      = "done"
	JobFailed    = "failed"
)

// jobRank orders states for the merge: a result outranks a cancellation
// or expiry that raced with it.
func jobRank(state string) int {
	switch state {
	case JobQueued:
		return 0
	case JobRunning:
		return 1
	case JobCancelled, JobExpired:
		return 2
	case JobDone, JobFailed:
		return 3
	}
	return -1
}

// Limits on jobs.
const (
	MaxScript    = 64 << 10
	MaxJobOutput = 64 << 10
)

// JobRecord is a piece of work queued for one machine, replicated like
// every record.
type JobRecord struct {
	ID              string    `json:"id"`
	Machine         string    `json:"machine"` // peer ID
	Client          string    `json:"client"`
	Name            string    `json:"name"` // the machine's name, for listings
	Script          string    `json:"script"`
	Shell           string    `json:"shell,omitempty"` // wire.Job.Shell
	Mode            string    `json:"mode"`
	RequiresConsent bool      `json:"requires_consent,omitempty"`
	Strict          bool      `json:"strict,omitempty"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	Expires         time.Time `json:"expires"`
	// The machine's readiness the job was planned against.
	PlannedSeq   uint64 `json:"planned_seq"`
	PlannedBoot  string `json:"planned_boot,omitempty"`
	PlannedAgent string `json:"planned_agent,omitempty"`

	// Update, when set, makes the job an agent update: Script and Shell
	// are empty and the agent installs the release instead.
	Update *JobUpdate `json:"update,omitempty"`

	State  string     `json:"state"`
	Broker string     `json:"broker,omitempty"` // the broker that last moved it
	Result *JobResult `json:"result,omitempty"`
	Stamp
}

// JobUpdate is the update an update job installs: the release version
// (its manifest and signature are read from the release record when the
// job is sent, so a withdrawn release is never sent), the rollout it
// belongs to, and how the agent takes it.
type JobUpdate struct {
	Version         string `json:"version"`
	Rollout         string `json:"rollout,omitempty"`
	Rollback        bool   `json:"rollback,omitempty"`
	HealthWindowSec int    `json:"health_window_s"`
	// Report is what the agent's first check-in after the update said of
	// it, copied here by the broker that took that check-in: the job is
	// replicated and the check-in's report is not, so this is how every
	// broker (the one driving the rollout among them) learns of a
	// rollback and its reason.
	Report *wire.UpdateReport `json:"report,omitempty"`
}

func (u *JobUpdate) check() error {
	if err := wire.ValidVersion(u.Version); err != nil {
		return err
	}
	if err := validID("rollout", u.Rollout); u.Rollout != "" && (err != nil || len(u.Rollout) > 32) {
		return fmt.Errorf("rollout %q: want up to 32 letters or digits", u.Rollout)
	}
	if u.HealthWindowSec < 10 || u.HealthWindowSec > 7*24*3600 {
		return fmt.Errorf("health window of %d s, want 10 s to 7 days", u.HealthWindowSec)
	}
	if u.Report != nil {
		return u.Report.Validate()
	}
	return nil
}

// JobResult is how a job ended.
type JobResult struct {
	ExitCode int       `json:"exit_code"`
	Output   string    `json:"output,omitempty"` // the first MaxJobOutput bytes
	Session  string    `json:"session,omitempty"`
	Warning  string    `json:"warning,omitempty"` // readiness changed since planning
	Error    string    `json:"error,omitempty"`   // why it failed or was refused
	Finished time.Time `json:"finished"`
}

func (j *JobRecord) check(id string) error {
	if j.ID != id {
		return fmt.Errorf("job %q under key %q", j.ID, id)
	}
	if jobRank(j.State) < 0 {
		return fmt.Errorf("job state %q", j.State)
	}
	if len(j.Script) > MaxScript {
		return fmt.Errorf("script of %d bytes, limit %d", len(j.Script), MaxScript)
	}
	if err := wire.ValidShell(j.Shell); err != nil {
		return err
	}
	if j.Update != nil {
		if j.Script != "" || j.Shell != "" {
			return errors.New("an update job with a script")
		}
		if err := j.Update.check(); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	if j.Result != nil && len(j.Result.Output) > MaxJobOutput+8 {
		return errors.New("job output over its limit")
	}
	return j.Stamp.check()
}

// mergeJob: the further state wins (by jobRank), carrying the later of
// the two clocks (see laterClock); equally far along, the later clock.
func mergeJob(l, r *JobRecord) *JobRecord {
	if lr, rr := jobRank(l.State), jobRank(r.State); lr != rr {
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

// CreateJobs stores new queued jobs in one transaction.
func (s *Store) CreateJobs(js []JobRecord) error {
	return s.write(func(b *batch) error {
		for i := range js {
			j := js[i]
			if _, found, err := getControl(b.tx, Key{KindJob, j.ID}); err != nil {
				return err
			} else if found {
				return refuse(fmt.Errorf("job %s: %w", j.ID, ErrExists))
			}
			j.State, j.Stamp = JobQueued, b.stamp()
			if err := j.check(j.ID); err != nil {
				return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
			}
			if err := b.putControl(Key{KindJob, j.ID}, &j); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateNewJobs stores those of js that are not stored yet as queued
// jobs, in one transaction, and returns the IDs it skipped: stored
// already, or deleted (a tombstone holds the ID). It is for jobs whose
// IDs are derived (a rollout's update jobs), where a job stored by
// another broker must not hold back the rest of the batch.
func (s *Store) CreateNewJobs(js []JobRecord) (skipped []string, err error) {
	err = s.write(func(b *batch) error {
		skipped = skipped[:0]
		for i := range js {
			j := js[i]
			if _, found, err := getControl(b.tx, Key{KindJob, j.ID}); err != nil {
				return err
			} else if found {
				skipped = append(skipped, j.ID)
				continue
			}
			j.State, j.Stamp = JobQueued, b.stamp()
			if err := j.check(j.ID); err != nil {
				return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
			}
			if err := b.putControl(Key{KindJob, j.ID}, &j); err != nil {
				return err
			}
		}
		return nil
	})
	return skipped, err
}

// JobsByID reads the jobs ids in one transaction, in no particular
// order; an ID not stored is left out. Unlike Jobs it returns deleted
// jobs (their tombstones, Deleted set), so a caller can tell a job that
// was removed from one never made.
func (s *Store) JobsByID(ids []string) ([]JobRecord, error) {
	out := make([]JobRecord, 0, len(ids))
	err := s.db.View(func(tx *bolt.Tx) error {
		bkt := tx.Bucket(bktJobs)
		for _, id := range ids {
			var j JobRecord
			found, err := getJSON(bkt, []byte(id), &j)
			if err != nil {
				return err
			}
			if found {
				out = append(out, j)
			}
		}
		return nil
	})
	return out, err
}

// UpdateJob changes a job with f, which sees the stored copy and may
// refuse; a state change that would go backwards is refused.
func (s *Store) UpdateJob(id string, f func(*JobRecord) error) (JobRecord, error) {
	var out JobRecord
	err := s.write(func(b *batch) error {
		var err error
		out, err = b.updateJob(id, f)
		return err
	})
	return out, err
}

// UpdateJobs changes each of the jobs ids with f in one transaction and
// returns the changed ones. A job f refuses, one not stored, and one
// whose change would go backwards are left as they are.
func (s *Store) UpdateJobs(ids []string, f func(*JobRecord) error) ([]JobRecord, error) {
	var out []JobRecord
	err := s.write(func(b *batch) error {
		out = out[:0]
		for _, id := range ids {
			j, err := b.updateJob(id, f)
			var r refusal
			if errors.As(err, &r) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// updateJob changes one job in the batch.
func (b *batch) updateJob(id string, f func(*JobRecord) error) (JobRecord, error) {
	rec, found, err := getControl(b.tx, Key{KindJob, id})
	if err != nil {
		return JobRecord{}, err
	}
	if !found {
		return JobRecord{}, refuse(fmt.Errorf("job %s: %w", id, ErrNotFound))
	}
	j := *rec.(*JobRecord)
	before := jobRank(j.State)
	if err := f(&j); err != nil {
		return JobRecord{}, refuse(err)
	}
	if jobRank(j.State) < before {
		return JobRecord{}, refuse(fmt.Errorf("job %s: %s cannot go back to %s", id, rec.(*JobRecord).State, j.State))
	}
	if err := j.check(id); err != nil { // what other brokers will check on import
		return JobRecord{}, refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	j.Stamp.Clock = b.s.clock.tick()
	return j, b.putControl(Key{KindJob, id}, &j)
}

// Jobs lists jobs that keep accepts, oldest first.
func (s *Store) Jobs(keep func(*JobRecord) bool) ([]JobRecord, error) {
	var out []JobRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktJobs).ForEach(func(_, raw []byte) error {
			var j JobRecord
			if err := json.Unmarshal(raw, &j); err != nil {
				return err
			}
			if !j.Deleted && (keep == nil || keep(&j)) {
				out = append(out, j)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// Summary is the job as listings show it.
func (j *JobRecord) Summary() wire.Job {
	out := wire.Job{ID: j.ID, Machine: j.Client + "/" + j.Name, MachineID: j.Machine, Mode: j.Mode, State: j.State,
		CreatedBy: j.CreatedBy, CreatedAt: j.CreatedAt, Expires: j.Expires, RequiresConsent: j.RequiresConsent,
		Strict: j.Strict, PlannedSeq: j.PlannedSeq, Script: j.Script, Shell: j.Shell, Broker: j.Broker}
	if r := j.Result; r != nil {
		out.Output, out.Session, out.Warning, out.Error = r.Output, r.Session, r.Warning, r.Error
		if j.State == JobDone || j.State == JobFailed {
			out.ExitCode, out.Finished = &r.ExitCode, &r.Finished
		}
	}
	return out
}
