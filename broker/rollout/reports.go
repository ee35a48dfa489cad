package rollout

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// A machine card shows how the machine's last update went
// (Readiness.LastUpdate). The machine record holds the report only on the
// broker that took the check-in carrying it; every other broker knows it
// from the update job it was copied into. The room keeps the newest
// report of each machine's jobs: from each look at the rollouts still
// moving, and from a read of every update job now and then (rollouts that
// ended, a restart).

// reportScan is how often every update job's report is read.
const reportScan = 30 * time.Second

// scanReports reads every update job's report when the last read is
// older than reportScan.
func (r *Room) scanReports(now time.Time) {
	r.mu.Lock()
	due := now.Sub(r.scanned) >= reportScan || now.Before(r.scanned)
	r.mu.Unlock()
	if !due {
		return
	}
	js, err := r.deps.Store.Jobs(func(j *store.JobRecord) bool { return j.Update != nil && j.Update.Report != nil })
	if err != nil {
		r.cfg.Logger.Warn("update reports not read", "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanned = now
	for i := range js {
		r.noteReportLocked(js[i].Machine, js[i].Update.Report)
	}
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
