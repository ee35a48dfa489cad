package rollout

import (
	"fmt"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// An agent says how its update went in its first check-in on the new
// (or, after a rollback, the old) binary. The broker that takes that
// check-in keeps the report on the machine's record, which is not how
// other brokers learn of it: every broker's room copies the reports it
// took into the update jobs they answer, and jobs are replicated.

// observe copies reports into the installing jobs of views, at most
// budget, and returns how many it wrote.
func (r *Room) observe(views []*view, budget int) int {
	var ids []string
	reports := map[string]*wire.UpdateReport{}
	for _, v := range views {
		for i := range v.steps {
			s := &v.steps[i]
			if len(ids) == budget {
				break
			}
			if !s.unreported {
				continue
			}
			if rep := r.report(&v.r, s); rep != nil {
				ids, reports[s.Job] = append(ids, s.Job), rep
			}
		}
	}
	if len(ids) == 0 {
		return 0
	}
	out, err := r.deps.Store.UpdateJobs(ids, func(j *store.JobRecord) error {
		rep := reports[j.ID]
		if j.Update == nil || j.Update.Report != nil || j.State != store.JobDone {
			return fmt.Errorf("job %s needs no report", j.ID)
		}
		j.Update.Report = rep
		return nil
	})
	if err != nil {
		r.cfg.Logger.Warn("update reports not stored", "err", err)
		return 0
	}
	keys := make([]store.Key, len(out))
	for i := range out {
		keys[i] = store.Key{Kind: store.KindJob, ID: out[i].ID}
		r.cfg.Logger.Info("update reported", "job", out[i].ID, "machine", out[i].Client+"/"+out[i].Name,
			"outcome", out[i].Update.Report.Outcome, "detail", out[i].Update.Report.Detail)
	}
	if len(keys) > 0 {
		r.deps.Replicated(keys...)
	}
	return len(ids)
}

// report is the update report machine s took here for rollout rec, when
// its job does not hold one yet.
func (r *Room) report(rec *store.RolloutRecord, s *mstep) *wire.UpdateReport {
	m, ok := r.deps.Store.Machine(s.MachineID)
	if !ok || m.LastUpdate == nil {
		return nil
	}
	rep := m.LastUpdate
	mine := rep.Rollout == rec.ID || rep.Rollout == "" && rep.To == rec.Version
	if !mine {
		return nil
	}
	c := *rep
	return &c
}
