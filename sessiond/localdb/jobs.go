package localdb

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bktJobs maps a queued job's ID to its JobRun (JSON).
var bktJobs = []byte("jobs")

// JobRun is the agent's record of a queued job it was asked to run.
type JobRun struct {
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	ExitCode int        `json:"exit_code"`
	Output   string     `json:"output,omitempty"`
}

// StartJob records that job id is about to run, committed before it runs.
// If the job was started before, it returns that record and false: the
// caller answers with it instead of running the job again.
func (d *DB) StartJob(id string, now time.Time) (JobRun, bool, error) {
	var prev JobRun
	first := false
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktJobs)
		if err != nil {
			return err
		}
		if raw := b.Get([]byte(id)); raw != nil {
			return json.Unmarshal(raw, &prev)
		}
		first = true
		prev = JobRun{Started: now.UTC()}
		raw, _ := json.Marshal(prev)
		return b.Put([]byte(id), raw)
	})
	return prev, first, err
}

// JobRecord returns what the database holds about job id.
func (d *DB) JobRecord(id string) (JobRun, bool, error) {
	var r JobRun
	found := false
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktJobs)
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &r)
	})
	return r, found, err
}

// FinishJob records how job id ended.
func (d *DB) FinishJob(id string, r JobRun) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktJobs)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(r)
		return b.Put([]byte(id), raw)
	})
}
