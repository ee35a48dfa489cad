package rollout

import (
	"encoding/json"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// view is one rollout as of one look: its record and every machine's
// step, canary wave first.
type view struct {
	r        store.RolloutRecord
	rel      relInfo
	relFound bool // the release record is stored here
	steps    []mstep
	counts   map[string]int
	tally    [2]store.Tally
	// inflight counts the machines updating now: their job sent and not
	// answered, or installing.
	inflight int
	// open counts machines whose step is not terminal, per wave.
	open [2]int
	// queued lists the IDs of the rollout's queued jobs.
	queued []string
}

// allSteps are the steps in the order listings show them.
var allSteps = []string{wire.StepWaiting, wire.StepQueued, wire.StepInstalling, wire.StepUpdated,
	wire.StepRolledBack, wire.StepFailed, wire.StepSkipped, wire.StepCancelled}

// fleet is the stored state views are worked out from, read once per
// look: the rollouts' update jobs, by rollout and machine. Machines are
// read one by one from the store's in-memory index, so a look costs what
// the rollouts it looks at hold, not what the fleet holds.
type fleet struct {
	jobs map[string]map[string]*store.JobRecord // rollout → machine → its update job
}

// look reads the update jobs of recs by their IDs (derived from the
// rollout and the machine), not by a scan of every job.
func (r *Room) look(recs []store.RolloutRecord) (*fleet, error) {
	var ids []string
	for i := range recs {
		ids = append(ids, r.jobIDs(&recs[i])...)
	}
	js, err := r.deps.Store.JobsByID(ids)
	if err != nil {
		return nil, err
	}
	f := &fleet{jobs: make(map[string]map[string]*store.JobRecord, len(recs))}
	for i := range js {
		j := &js[i]
		if j.Update == nil {
			continue
		}
		byMachine := f.jobs[j.Update.Rollout]
		if byMachine == nil {
			byMachine = map[string]*store.JobRecord{}
			f.jobs[j.Update.Rollout] = byMachine
		}
		byMachine[j.Machine] = j
	}
	return f, nil
}

// jobIDs are the IDs of rec's update jobs, one per machine, worked out
// once per rollout (a hash each) and kept while it is looked at.
func (r *Room) jobIDs(rec *store.RolloutRecord) []string {
	r.mu.Lock()
	ids, ok := r.ids[rec.ID]
	r.mu.Unlock()
	if ok {
		return ids
	}
	ids = make([]string, 0, len(rec.Canary)+len(rec.Rest))
	for _, wave := range [2][]string{rec.Canary, rec.Rest} {
		for _, m := range wave {
			ids = append(ids, JobID(rec.ID, m))
		}
	}
	r.mu.Lock()
	r.ids[rec.ID] = ids
	r.mu.Unlock()
	return ids
}

// view works out rollout rec's steps at now.
func (r *Room) view(rec *store.RolloutRecord, f *fleet, now time.Time) *view {
	v := &view{r: *rec, counts: make(map[string]int, len(allSteps))}
	v.rel, v.relFound = r.release(rec.Version)
	st := &stepper{r: &v.r, rel: v.rel, now: now, grace: r.cfg.Grace}
	jobs := f.jobs[rec.ID]
	v.steps = make([]mstep, 0, len(rec.Canary)+len(rec.Rest))
	for wave, ids := range [2][]string{rec.Canary, rec.Rest} {
		for _, id := range ids {
			m, ok := r.deps.Store.Machine(id)
			s := st.step(id, wave, &m, ok, jobs[id])
			if s.running {
				r.offline(&s, &m, ok)
			}
			v.add(&s, jobs[id])
		}
	}
	return v
}

// offline stops counting a sent job as in flight while its machine is
// not reachable anywhere: the queue asks the agent again when it is
// back, and meanwhile the machine must not hold one of the rollout's
// max-parallel places (a fleet of laptops would stall the rollout).
func (r *Room) offline(s *mstep, m *store.Machine, ok bool) {
	if ok {
		if rc := r.deps.Reach.Reach(m); rc.Online {
			return
		} else if rc.LastSeen != nil {
			s.running, s.Detail = false, "sent; machine offline since "+rc.LastSeen.UTC().Format(time.RFC3339)
			return
		}
	}
	s.running, s.Detail = false, "sent; machine offline"
}

// add counts s into v.
func (v *view) add(s *mstep, j *store.JobRecord) {
	v.steps = append(v.steps, *s)
	v.counts[s.Step]++
	t := &v.tally[s.Wave]
	if s.started {
		t.Started++
	}
	if s.failed() {
		t.Failed++
	}
	if s.running || s.Step == wire.StepInstalling {
		v.inflight++
	}
	if !terminal(s.Step) {
		v.open[s.Wave]++
	}
	if j != nil && j.State == store.JobQueued {
		v.queued = append(v.queued, j.ID)
	}
}

// wave is the wave the rollout is on: 0 until the canary wave is
// through, then 1.
func (v *view) wave() int {
	if v.r.WaveStarted[1].IsZero() {
		return 0
	}
	return 1
}

// release returns what the room knows of a release, reading its record
// (and the minimum agent version from its manifest) once per version
// and then only its withdrawal.
func (r *Room) release(version string) (relInfo, bool) {
	rec, found, err := r.deps.Releases.Release(version)
	if err != nil || !found {
		return relInfo{}, false
	}
	r.mu.Lock()
	info, ok := r.releases[version]
	r.mu.Unlock()
	if !ok {
		// The manifest was checked against its signature when it was
		// published; here only its minimum version is read.
		var m release.Manifest
		if json.Unmarshal(rec.Manifest, &m) == nil {
			info.minAgent = m.MinAgent
		}
		r.mu.Lock()
		r.releases[version] = info
		r.mu.Unlock()
	}
	info.withdrawn, info.by = rec.Withdrawn, rec.WithdrawnBy
	return info, true
}
