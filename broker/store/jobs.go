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

	State  string     `json:"state"`
	Broker string     `json:"broker,omitempty"` // the broker that last moved it
	Result *JobResult `json:"result,omitempty"`
	Stamp
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
	if j.Result != nil && len(j.Result.Output) > MaxJobOutput+8 {
		return errors.New("job output over its limit")
	}
	return j.Stamp.check()
}

// mergeJob: the further state wins (by jobRank); equally far along, the
// later clock.
func mergeJob(l, r *JobRecord) *JobRecord {
	if lr, rr := jobRank(l.State), jobRank(r.State); lr != rr {
		if rr > lr {
			return r
		}
		return l
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

// UpdateJob changes a job with f, which sees the stored copy and may
// refuse; a state change that would go backwards is refused.
func (s *Store) UpdateJob(id string, f func(*JobRecord) error) (JobRecord, error) {
	var out JobRecord
	err := s.write(func(b *batch) error {
		rec, found, err := getControl(b.tx, Key{KindJob, id})
		if err != nil {
			return err
		}
		if !found {
			return refuse(fmt.Errorf("job %s: %w", id, ErrNotFound))
		}
		j := *rec.(*JobRecord)
		before := jobRank(j.State)
		if err := f(&j); err != nil {
			return refuse(err)
		}
		if jobRank(j.State) < before {
			return refuse(fmt.Errorf("job %s: %s cannot go back to %s", id, rec.(*JobRecord).State, j.State))
		}
		if err := j.check(id); err != nil { // what other brokers will check on import
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		j.Stamp.Clock = b.s.clock.tick()
		out = j
		return b.putControl(Key{KindJob, id}, &j)
	})
	return out, err
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
