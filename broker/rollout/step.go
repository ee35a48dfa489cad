package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// A machine's step is worked out from its update job and its record; see
// the package doc for why it is not stored.

// mstep is one machine's place in a rollout, as of one tick.
type mstep struct {
	wire.RolloutMachine
	client string
	// started: its update job was sent (running or ended after a send).
	started bool
	// due: no job yet, and its wave has reached it: the driver queues one.
	due bool
	// running: its job was sent and the agent has not answered yet.
	running bool
	// unreported: its agent took the update and the job holds no report
	// of how it went.
	unreported bool
	// report is the agent's report the job holds, or nil.
	report *wire.UpdateReport
	// current: skipped because the machine is on the version already
	// (or a newer one): a canary that proves the release as well as an
	// update would.
	current bool
	// expired: its job expired before the machine was reachable.
	expired bool
}

// failed reports whether the step counts against the thresholds.
func (s *mstep) failed() bool {
	return s.started && (s.Step == wire.StepFailed || s.Step == wire.StepRolledBack)
}

// terminal reports whether the machine is done with this rollout.
func terminal(step string) bool {
	switch step {
	case wire.StepWaiting, wire.StepQueued, wire.StepInstalling:
		return false
	}
	return true
}

// relInfo is what the room needs of a release beyond its record.
type relInfo struct {
	minAgent  string
	withdrawn bool
	by        string // who withdrew it
}

// stepper works out steps for one rollout at one time.
type stepper struct {
	r     *store.RolloutRecord
	rel   relInfo
	now   time.Time
	grace time.Duration
}

// step is machine id's step in wave; m is its record (ok false once it
// left the fleet) and j its update job, or nil.
func (st *stepper) step(id string, wave int, m *store.Machine, ok bool, j *store.JobRecord) mstep {
	s := mstep{RolloutMachine: wire.RolloutMachine{MachineID: id, Wave: wave}}
	if ok {
		s.Machine, s.client, s.From = m.Client+"/"+m.Name, m.Client, m.AgentVersion
	}
	if j != nil {
		s.Job, s.From = j.ID, j.PlannedAgent
		if s.Machine == "" {
			s.Machine, s.client = j.Client+"/"+j.Name, j.Client
		}
		st.jobStep(&s, m, ok, j)
		return s
	}
	r := st.r
	switch why := st.skip(m); {
	case !ok:
		s.Step, s.Detail = wire.StepSkipped, "no longer in the fleet"
	case r.State == wire.RolloutAborted:
		s.Step, s.Detail = wire.StepCancelled, "the rollout was aborted before it reached the machine"
	case why != "":
		s.Step, s.Detail, s.current = wire.StepSkipped, why, st.onTarget(m.AgentVersion)
	case r.State == wire.RolloutDone:
		s.Step, s.Detail = wire.StepSkipped, "not reached before the rollout ended"
	case r.WaveStarted[wave].IsZero():
		s.Step = wire.StepWaiting
	default:
		s.Step, s.due = wire.StepWaiting, true
	}
	return s
}

// skip says why machine m needs no update from this rollout, or "".
// A machine that never reported a version is not skipped: the agent
// itself refuses what it cannot take.
func (st *stepper) skip(m *store.Machine) string {
	v, target := m.AgentVersion, st.r.Version
	if v == "" {
		return ""
	}
	switch c := release.CompareVersions(v, target); {
	case c == 0:
		return "already on " + target
	case c > 0 && !st.r.Rollback:
		return fmt.Sprintf("on %s, newer than %s (not a rollback)", v, target)
	}
	if st.rel.minAgent != "" && release.CompareVersions(v, st.rel.minAgent) < 0 {
		return fmt.Sprintf("agent %s is older than %s's minimum %s", v, target, st.rel.minAgent)
	}
	return ""
}

// jobStep sets s from the machine's update job.
func (st *stepper) jobStep(s *mstep, m *store.Machine, ok bool, j *store.JobRecord) {
	s.Updated = j.CreatedAt
	res := j.Result
	if res == nil {
		res = &store.JobResult{}
	}
	switch {
	case j.Deleted:
		s.Step, s.Detail = wire.StepCancelled, "its update job was deleted"
	case j.State == store.JobQueued:
		s.Step = wire.StepQueued
	case j.State == store.JobRunning:
		s.Step, s.started, s.running, s.Detail = wire.StepQueued, true, true, "sent; waiting for the agent"
	case j.State == store.JobCancelled && res.Session != "" && res.Finished.IsZero():
		// Cancelled as it was being sent: the agent's word decides whether
		// it ran, and until then the machine may be updating.
		s.Step, s.running, s.Detail = wire.StepQueued, true, "cancelled as it was sent; waiting for the agent's word"
	case j.State == store.JobCancelled:
		s.Step, s.Detail = wire.StepCancelled, res.Error
		if why, found := strings.CutPrefix(res.Error, skippedPrefix); found {
			s.Step, s.Detail, s.current = wire.StepSkipped, why, ok && st.onTarget(m.AgentVersion)
		}
	case j.State == store.JobExpired:
		s.expired = true
		s.Step, s.Detail, s.Updated = wire.StepFailed, orText(res.Error, "expired before the machine was reachable"), res.Finished
	case j.State == store.JobFailed:
		s.Step, s.started, s.Detail, s.Updated = wire.StepFailed, true, jobError(res), res.Finished
	case j.State == store.JobDone:
		s.started, s.Updated, s.unreported, s.report = true, orTime(res.Finished, j.CreatedAt), j.Update.Report == nil, j.Update.Report
		st.installed(s, m, ok, j)
	}
}

// installed sets the step of a machine whose agent took the update:
// installing until it checks in on the new version (updated), reports
// a rollback, or stays silent past the health window and grace (failed).
func (st *stepper) installed(s *mstep, m *store.Machine, ok bool, j *store.JobRecord) {
	rep := j.Update.Report
	window := time.Duration(j.Update.HealthWindowSec) * time.Second
	switch {
	case rep != nil && rep.Outcome == wire.ReasonRolledBack:
		s.Step, s.Detail, s.Updated = wire.StepRolledBack, orText(rep.Detail, "rolled back"), orTime(rep.At, s.Updated)
	case ok && st.onTarget(m.AgentVersion):
		s.Step, s.Detail = wire.StepUpdated, "checked in on "+m.AgentVersion
		if m.LastCheckIn != nil {
			s.Updated = m.LastCheckIn.At
		}
	case rep != nil && rep.Outcome == wire.ReasonUpdated:
		s.Step, s.Detail, s.Updated = wire.StepUpdated, "reported "+rep.To, orTime(rep.At, s.Updated)
	case st.now.After(s.Updated.Add(window + st.grace)):
		s.Step, s.Detail = wire.StepFailed, fmt.Sprintf("no check-in on %s within %s of the update", st.r.Version, window)
	default:
		s.Step, s.Detail = wire.StepInstalling, firstLine(j.Result.Output)
	}
}

// onTarget reports whether an agent on version v has the rollout's
// release (or, unless it is a rollback, a newer one).
func (st *stepper) onTarget(v string) bool {
	if v == "" {
		return false
	}
	c := release.CompareVersions(v, st.r.Version)
	return c == 0 || c > 0 && !st.r.Rollback
}

// jobError is why a job failed: the agent's reason, else its output's
// first line and exit status.
func jobError(r *store.JobResult) string {
	if r.Error != "" {
		return r.Error
	}
	l := firstLine(r.Output)
	switch {
	case l != "" && r.ExitCode < 0: // a refusal the agent recorded, replayed as output
		return l
	case l != "":
		return fmt.Sprintf("exit %d: %s", r.ExitCode, l)
	}
	return fmt.Sprintf("exit %d", r.ExitCode)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func orText(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

func orTime(t, otherwise time.Time) time.Time {
	if t.IsZero() {
		return otherwise
	}
	return t
}
