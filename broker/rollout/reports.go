package rollout

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// A machine card shows how the machine's last update went
// (Readiness.LastUpdate). The machine record carries the report of the
// check-in that brought it, to every broker; a broker of an earlier
// version kept it on its own record only, and the other brokers knew it
// from the update job it copied it into. So the room also keeps the
// newest report of each machine's jobs, from three reads:
//
//   - each look at the rollouts still moving (publish), every tick;
//   - every update job, once, at the room's first scan: the rollouts
//     that ended before the room started;
//   - the jobs of each rollout that stopped moving since (it ended, or
//     its record arrived ended), at each scan for reportSettle after the
//     room first saw it stopped: reports copied into its jobs after the
//     last look at it, here at the final tick or by another broker and
//     replicated late.
//
// A broker copies reports only into the jobs of rollouts it looks at, so
// once no broker looks at a rollout its jobs' reports stay as they are,
// and a scan costs what the rollouts that stopped lately hold, not what
// every rollout ever held.

// reportScan is how often the room reads the reports the looks at moving
// rollouts do not see.
const reportScan = 30 * time.Second

// reportSettle is how long after the room first sees a rollout stopped
// it still reads the rollout's jobs at each scan. A broker copies a
// report into a job only while it looks at the rollout, so this is the
// time for its last copies to be replicated here: many push/pull rounds
// of a healthy cluster.
const reportSettle = 10 * time.Minute

// scanReports reads the reports the looks do not see, when the last
// scan is older than reportScan: at the room's first scan, every update
// job's; after that, those of the rollouts that stopped lately.
func (r *Room) scanReports(now time.Time) {
	r.mu.Lock()
	due := now.Sub(r.scanned) >= reportScan || now.Before(r.scanned)
	first := r.scanned.IsZero()
	r.mu.Unlock()
	if !due {
		return
	}
	stopped, err := r.stopped()
	if err != nil {
		r.cfg.Logger.Warn("update reports not read", "err", err)
		return
	}
	var js []store.JobRecord
	if first {
		r.settled(stopped, now, true)
		js, err = r.deps.Store.Jobs(func(j *store.JobRecord) bool { return j.Update != nil && j.Update.Report != nil })
	} else if ids := r.settling(stopped, now); len(ids) > 0 {
		js, err = r.deps.Store.JobsByID(ids)
	}
	if err != nil {
		r.cfg.Logger.Warn("update reports not read", "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanned = now
	for i := range js {
		if j := &js[i]; !j.Deleted && j.Update != nil {
			r.noteReportLocked(j.Machine, j.Update.Report)
		}
	}
}

// stopped lists the IDs of the stored rollouts a tick does not look at:
// done, or aborted with no queued job left. Only the head of each record
// is read.
func (r *Room) stopped() (map[string]bool, error) {
	out := map[string]bool{}
	_, err := r.deps.Store.RolloutsWhere(func(id, state string) bool {
		if !r.looked(id, state) {
			out[id] = true
		}
		return false
	})
	return out, err
}

// settled notes when the room first saw each rollout of stopped so, and
// forgets those no longer stored. With all, as at the first scan, which
// reads every job, the rollouts it had not seen need no read of their
// own.
func (r *Room) settled(stopped map[string]bool, now time.Time, all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range stopped {
		if _, ok := r.ended[id]; !ok {
			r.ended[id] = now
			if all {
				r.ended[id] = time.Time{}
			}
		}
	}
	for id := range r.ended {
		if !stopped[id] {
			delete(r.ended, id)
		}
	}
}

// settling returns the job IDs of the rollouts of stopped still within
// reportSettle of the room first seeing them stopped. A rollout past it
// is settled: its job IDs are forgotten, and its jobs not read again.
func (r *Room) settling(stopped map[string]bool, now time.Time) []string {
	r.settled(stopped, now, false)
	var read []string
	r.mu.Lock()
	for id, since := range r.ended {
		switch {
		case since.IsZero():
		case now.Sub(since) > reportSettle:
			r.ended[id] = time.Time{}
			delete(r.ids, id)
		default:
			read = append(read, id)
		}
	}
	r.mu.Unlock()
	var ids []string
	for _, id := range read {
		r.mu.Lock()
		known, ok := r.ids[id]
		r.mu.Unlock()
		if ok {
			ids = append(ids, known...)
			continue
		}
		// A rollout this room did not look at since it started: its
		// record is read once, and its job IDs kept until it settles.
		rec, found, err := r.deps.Store.Rollout(id)
		if err != nil {
			r.cfg.Logger.Warn("rollout not read", "rollout", id, "err", err)
			continue
		}
		if found {
			ids = append(ids, r.jobIDs(&rec)...)
		}
	}
	return ids
}

// noteReportLocked keeps rep as machine id's report when it is newer
// than the one kept.
func (r *Room) noteReportLocked(id string, rep *wire.UpdateReport) {
	if rep == nil {
		return
	}
	if old, ok := r.reports[id]; !ok || rep.At.After(old.At) {
		r.reports[id] = rep
	}
}

// lastUpdate sets rd.LastUpdate to machine id's newest report: the one
// its record holds or the one its jobs hold.
func (r *Room) lastUpdate(id string, rd *wire.Readiness) {
	r.mu.Lock()
	rep := r.reports[id]
	r.mu.Unlock()
	if rep != nil && (rd.LastUpdate == nil || rep.At.After(rd.LastUpdate.At)) {
		rd.LastUpdate = rep
	}
}
