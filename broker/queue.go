package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// The work queue: technicians plan work from stored state, for machines
// whether or not they are reachable, and the broker holding a machine's
// bridge runs it when the machine is there. A job runs at most once: the
// broker marks it running (replicated) before it sends it, and the agent
// records each job ID in its spool before it runs it and answers a repeat
// with the recorded result, so a broker that takes over after a failover
// never runs a job twice.

// queueAdd runs OpQueueAdd.
func (b *Broker) queueAdd(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.QueueArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if !t.Admin && !slices.Contains(t.Modes, a.Mode) {
		return nil, wire.Errorf(wire.CodeForbidden, "technician %s may not run %s work", t.Name, a.Mode)
	}
	var ms []store.Machine
	if len(a.Machines) > 0 {
		for _, name := range a.Machines {
			m, werr := b.findMachine(t, name)
			if werr != nil {
				return nil, werr
			}
			ms = append(ms, m)
		}
	}
	if a.Client != "" || a.PendingUpdate != "" || a.Readiness != "" {
		q := wire.MachinesArgs{Client: a.Client, PendingUpdate: a.PendingUpdate, Readiness: a.Readiness}
		if err := readiness.ValidateArgs(&q); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		for _, c := range b.machines(t, q) {
			if m, ok := b.store.Machine(c.ID); ok && !slices.ContainsFunc(ms, func(x store.Machine) bool { return x.ID == m.ID }) {
				ms = append(ms, m)
			}
		}
	}
	if len(ms) == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no machine you can see matches")
	}
	now := b.cfg.Now().UTC()
	var js []store.JobRecord
	for _, m := range ms {
		j := store.JobRecord{ID: mesh.NewSessionID(), Machine: m.ID, Client: m.Client, Name: m.Name, Script: a.Script,
			Mode: a.Mode, RequiresConsent: a.RequiresConsent, Strict: a.Strict, CreatedBy: t.Name, CreatedAt: now,
			Expires: now.Add(time.Duration(a.ExpiresSec) * time.Second), PlannedAgent: m.AgentVersion}
		if m.LastCheckIn != nil {
			j.PlannedSeq, j.PlannedBoot = m.LastCheckIn.Seq, m.LastCheckIn.BootID
		}
		js = append(js, j)
	}
	if err := b.store.CreateJobs(js); err != nil {
		return nil, storeErr(err)
	}
	out := make([]wire.Job, 0, len(js))
	for i := range js {
		b.replicated(store.Key{Kind: store.KindJob, ID: js[i].ID})
		b.audit(wire.AuditEntry{Event: "job.queued", Technician: t.Name, Machine: js[i].Client + "/" + js[i].Name,
			Mode: js[i].Mode, Detail: "job " + js[i].ID[:8]})
		js[i].State = store.JobQueued
		sum := js[i].Summary()
		sum.Script = "" // the technician has it; 1,000 copies would not fit a reply
		out = append(out, sum)
	}
	b.queue.kick()
	return out, nil
}

// queueList runs OpQueueList.
func (b *Broker) queueList(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.QueueListArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	js, err := b.store.Jobs(func(j *store.JobRecord) bool {
		return visible(t, j.Client) && (a.Machine == "" || a.Machine == j.Name || a.Machine == j.Client+"/"+j.Name || a.Machine == j.Machine)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	out := []wire.Job{}
	for i := range js {
		s := b.jobView(&js[i])
		if a.State == "" || s.State == a.State {
			s.Script, s.Output = "", ""
			out = append(out, s)
		}
	}
	return out, nil
}

// jobView is a job as shown now: a running job whose session waits for
// the person at the machine shows waiting-for-consent.
func (b *Broker) jobView(j *store.JobRecord) wire.Job {
	s := j.Summary()
	if j.State == store.JobRunning && j.Result != nil && j.Result.Session != "" {
		for _, x := range b.live.sessions(j.Machine) {
			if x.Session == j.Result.Session && x.State == "waiting-for-approval" {
				s.State = "waiting-for-consent"
			}
		}
	}
	return s
}

// findJob resolves a job ID prefix among the jobs t may see.
func (b *Broker) findJob(t *wire.Technician, id string) (store.JobRecord, *wire.Error) {
	js, err := b.store.Jobs(func(j *store.JobRecord) bool { return strings.HasPrefix(j.ID, id) && visible(t, j.Client) })
	if err != nil {
		return store.JobRecord{}, storeErr(err)
	}
	switch len(js) {
	case 0:
		return store.JobRecord{}, wire.Errorf(wire.CodeNotFound, "no job %s among the jobs you can see", id)
	case 1:
		return js[0], nil
	}
	return store.JobRecord{}, wire.Errorf(wire.CodeConflict, "job %s is ambiguous: give more digits", id)
}

// queueShow runs OpQueueShow.
func (b *Broker) queueShow(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.JobArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	j, werr := b.findJob(t, a.ID)
	if werr != nil {
		return nil, werr
	}
	return b.jobView(&j), nil
}

// queueCancel runs OpQueueCancel: only a job still queued is cancelled.
func (b *Broker) queueCancel(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.JobArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	j, werr := b.findJob(t, a.ID)
	if werr != nil {
		return nil, werr
	}
	out, err := b.store.UpdateJob(j.ID, func(j *store.JobRecord) error {
		if j.State != store.JobQueued {
			return fmt.Errorf("%w: job %s is %s, only a queued job can be cancelled", store.ErrExists, j.ID[:8], j.State)
		}
		j.State, j.Broker = store.JobCancelled, b.cfg.Name
		j.Result = &store.JobResult{Error: "cancelled by " + t.Name, Finished: b.cfg.Now().UTC()}
		return nil
	})
	if err != nil {
		return nil, wire.Errorf(wire.CodeConflict, "%v", err)
	}
	b.replicated(store.Key{Kind: store.KindJob, ID: out.ID})
	b.audit(wire.AuditEntry{Event: "job.cancelled", Technician: t.Name, Machine: out.Client + "/" + out.Name, Detail: "job " + out.ID[:8]})
	return out.Summary(), nil
}

// dispatcher runs queued jobs for the machines bridged to this broker.
type dispatcher struct {
	b    *Broker
	wake chan struct{}

	mu      sync.Mutex
	busy    map[string]bool // machine IDs with a job in flight here
	pending map[string]bool // machine IDs with queued or running jobs, as of the last round
}

// waitsForCheckIn reports whether id has work waiting that cannot start
// until the machine checks in on its current bridge.
func (d *dispatcher) waitsForCheckIn(id string) bool {
	d.mu.Lock()
	p := d.pending[id]
	d.mu.Unlock()
	if !p {
		return false
	}
	since, ok := d.b.live.since(id)
	m, found := d.b.store.Machine(id)
	return ok && found && (m.LastCheckIn == nil || m.LastCheckIn.At.Before(since))
}

func newDispatcher(b *Broker) *dispatcher {
	return &dispatcher{b: b, wake: make(chan struct{}, 1), busy: map[string]bool{}}
}

func (d *dispatcher) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// maxDispatch bounds the machines whose jobs run at once on one broker.
const maxDispatch = 64

// run looks for work every second, and at once when kicked (new jobs, a
// machine connecting or checking in).
func (d *dispatcher) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxDispatch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
		js, err := d.b.store.Jobs(func(j *store.JobRecord) bool {
			return j.State == store.JobQueued || j.State == store.JobRunning || cancelledAfterStart(j)
		})
		if err != nil {
			continue
		}
		byMachine := map[string][]store.JobRecord{}
		pending := map[string]bool{}
		for _, j := range js {
			byMachine[j.Machine] = append(byMachine[j.Machine], j)
			pending[j.Machine] = true
		}
		d.mu.Lock()
		d.pending = pending
		d.mu.Unlock()
		for id, mine := range byMachine {
			if !d.b.live.online(id) {
				continue
			}
			d.mu.Lock()
			if d.busy[id] {
				d.mu.Unlock()
				continue
			}
			d.busy[id] = true
			d.mu.Unlock()
			select {
			case slots <- struct{}{}:
			default: // at the limit: next round
				d.mu.Lock()
				delete(d.busy, id)
				d.mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					<-slots
					d.mu.Lock()
					delete(d.busy, id)
					d.mu.Unlock()
				}()
				// Oldest first, one at a time: a job that has not ended
				// (its answer lost, its script still running) holds the
				// ones after it.
				for _, j := range mine {
					if ctx.Err() != nil || !d.b.live.online(id) || !d.dispatch(ctx, j) {
						return
					}
				}
			}()
		}
	}
}

// cancelledAfterStart: a cancellation that raced with a start elsewhere;
// the agent's record says whether the job ran.
func cancelledAfterStart(j *store.JobRecord) bool {
	return j.State == store.JobCancelled && j.Result != nil && j.Result.Session != "" && j.Result.Finished.IsZero()
}

// dispatch moves one job on and reports whether it has ended. The broker
// holding the machine's bridge may take over any job still running: the
// agent holds one bridge at a time, so no other broker is sending it, and
// the agent's record answers for a job that already started.
func (d *dispatcher) dispatch(ctx context.Context, j store.JobRecord) bool {
	b := d.b
	now := b.cfg.Now().UTC()
	// finish stores how the job ended, only from the state it was read
	// in: a newer record (a result from another broker) is never
	// overwritten.
	finish := func(from, state string, r store.JobResult) {
		r.Finished = b.cfg.Now().UTC()
		out, err := b.store.UpdateJob(j.ID, func(x *store.JobRecord) error {
			if x.State != from {
				return fmt.Errorf("job is %s now, not %s", x.State, from)
			}
			if r.Session == "" && x.Result != nil {
				r.Session = x.Result.Session
			}
			x.State, x.Broker, x.Result = state, b.cfg.Name, &r
			return nil
		})
		if err != nil {
			b.log.Info("job result not stored", "job", j.ID, "err", err)
			return
		}
		b.replicated(store.Key{Kind: store.KindJob, ID: j.ID})
		b.audit(wire.AuditEntry{Event: "job." + state, Technician: out.CreatedBy, Machine: out.Client + "/" + out.Name,
			Mode: out.Mode, Session: r.Session, Detail: fmt.Sprintf("job %s exit %d %s", j.ID[:8], r.ExitCode, r.Error)})
		b.log.Info("job "+state, "job", j.ID, "machine", out.Client+"/"+out.Name, "exit", r.ExitCode)
	}
	if j.State == store.JobQueued && now.After(j.Expires) {
		finish(store.JobQueued, store.JobExpired, store.JobResult{ExitCode: -1, Error: "expired before the machine was reachable"})
		return true
	}
	m, ok := b.store.Machine(j.Machine)
	if !ok {
		return false
	}
	// Judge the machine by what it says now: wait for the check-in it
	// makes when its bridge opens.
	if since, ok := b.live.since(m.ID); !ok || m.LastCheckIn == nil || m.LastCheckIn.At.Before(since) {
		return false
	}
	var warning string
	if j.State == store.JobQueued && (m.LastCheckIn.BootID != j.PlannedBoot && j.PlannedBoot != "" || m.AgentVersion != j.PlannedAgent && j.PlannedAgent != "") {
		var what []string
		if m.LastCheckIn.BootID != j.PlannedBoot {
			what = append(what, "it rebooted")
		}
		if m.AgentVersion != j.PlannedAgent {
			what = append(what, fmt.Sprintf("its agent went from %s to %s", j.PlannedAgent, m.AgentVersion))
		}
		warning = fmt.Sprintf("since this job was planned (check-in %d) %s", j.PlannedSeq, strings.Join(what, " and "))
		if j.Strict {
			finish(store.JobQueued, store.JobFailed, store.JobResult{ExitCode: -1, Warning: warning, Error: "refused (--strict): " + warning})
			return true
		}
	} else if j.Result != nil {
		warning = j.Result.Warning
	}
	sg, g, err := mesh.IssueGrant(b.key.Priv, wire.Grant{Technician: b.ID(), Machine: m.ID, Mode: j.Mode,
		TechnicianName: "queue (" + j.CreatedBy + ")"}, b.cfg.Now(), time.Hour)
	if err != nil {
		return false
	}
	query := j.State == store.JobCancelled
	state := j.State
	if j.State == store.JobQueued {
		// The claim: running, on this broker, with the session it runs in.
		if _, err := b.store.UpdateJob(j.ID, func(x *store.JobRecord) error {
			if x.State != store.JobQueued {
				return fmt.Errorf("job is %s", x.State)
			}
			x.State, x.Broker = store.JobRunning, b.cfg.Name
			x.Result = &store.JobResult{Session: g.Session, Warning: warning}
			return nil
		}); err != nil {
			return false
		}
		b.replicated(store.Key{Kind: store.KindJob, ID: j.ID})
		state = store.JobRunning
	}
	id, _ := peer.Decode(m.ID)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute) // consent wait and the script's run
	defer cancel()
	var rep wire.JobReply
	err = bridge.Call(cctx, b.host, id, wire.ProtoJob, &wire.JobRequest{Grant: sg, Job: j.ID, Script: j.Script,
		RequiresConsent: j.RequiresConsent, Expires: j.Expires, QueryOnly: query}, &rep, wire.MaxControl+6*store.MaxJobOutput)
	switch {
	case err != nil:
		// Not delivered, or the answer lost: the agent's record decides
		// on the next try.
		b.log.Info("job not finished; will ask again", "job", j.ID, "err", err)
		return false
	case rep.Error != nil && rep.Error.Code == wire.CodeUnavailable:
		b.log.Info("job still running on the machine; will ask again", "job", j.ID)
		return false
	case rep.Error != nil && query && rep.Error.Code == wire.CodeNotFound:
		// Cancelled before it started: the cancellation stands.
		if _, err := b.store.UpdateJob(j.ID, func(x *store.JobRecord) error {
			if x.Result != nil {
				x.Result.Finished = b.cfg.Now().UTC()
			}
			return nil
		}); err == nil {
			b.replicated(store.Key{Kind: store.KindJob, ID: j.ID})
		}
		return true
	case rep.Error != nil && strings.Contains(rep.Error.Message, "expired while it waited"):
		finish(state, store.JobExpired, store.JobResult{ExitCode: -1, Warning: warning, Error: rep.Error.Message})
		return true
	case rep.Error != nil:
		finish(state, store.JobFailed, store.JobResult{ExitCode: -1, Session: g.Session, Warning: warning, Error: rep.Error.Message})
		return true
	}
	end := store.JobDone
	if rep.ExitCode != 0 {
		end = store.JobFailed
	}
	finish(state, end, store.JobResult{ExitCode: rep.ExitCode, Output: rep.Output, Session: g.Session, Warning: warning})
	return true
}
