package density

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/update"
)

// The agents of the rollout benchmark take an update job as sessiond
// does, with sessiond/update's own steps, and stop where sessiond would
// restart: update.Check verifies the order against the pinned key,
// update.Fetcher downloads the blob over the agent's bridge (ProtoRelease
// get, into the agent's update directory, fsynced, SHA-256 and size
// checked), and the agent answers the job and checks in with reason
// "updated", the new version and the update report, as the new binary's
// first check-in would (over the same bridge: the restart's reconnect is
// what BenchmarkReconnectStorm measures). One agent in stageEvery also
// stages the binary with update.Stage (EXE.new written, hashed, synced
// and renamed next to a stand-in executable), saves the trial state and
// writes the healthy marker after its check-in is acknowledged; the
// others delete the download once it is checked, as their stand-in for
// the copy. Each agent deletes its directory when it is done, so disk use
// is bounded by the downloads in flight (max-parallel × the binary),
// and no agent holds the binary in memory.

// updateJobLimit bounds one agent's update: the job's read, the download,
// the staging and the check-in.
const updateJobLimit = 5 * time.Minute

// updater is the update side of a fleet of simulated agents.
type updater struct {
	broker peer.ID
	pinned string // the release key every agent pinned
	from   string // the version the agents run
	dir    string // the agents' state directories
	// every: agents i with i%every == 0 stage the binary (and count
	// the bytes they receive, see countingConn).
	every int

	updated atomic.Int64 // agents whose "updated" check-in was acknowledged
	staged  atomic.Int64 // of them, agents that staged EXE.new
	// Requests for a job an agent had already taken: while it still ran
	// (answered "still running"), and once it had ended (replayed).
	askedRunning, askedDone atomic.Int64

	mu     sync.Mutex
	errs   []error               // mu guards all following fields: the first few failures
	failed int                   // how many failed
	jobs   map[jobKey]*jobRecord // the jobs each agent took
}

// jobKey names one agent's job.
type jobKey struct {
	agent int
	job   string
}

// jobRecord is what an agent knows of a job it took: as sessiond's job
// record, it makes a job run once however often the broker asks.
type jobRecord struct {
	done  bool
	reply wire.JobReply
}

// take records that agent i starts job, or returns the answer to a job it
// already knows of (or, asked only whether it ran one, does not).
func (u *updater) take(i int, req *wire.JobRequest) (wire.JobReply, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := jobKey{i, req.Job}
	rec := u.jobs[k]
	switch {
	case rec != nil && rec.done:
		u.askedDone.Add(1)
		rep := rec.reply
		rep.Replayed = true
		return rep, false
	case rec != nil:
		u.askedRunning.Add(1)
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeUnavailable, Message: "job " + req.Job[:8] + " is still running"}}, false
	case req.QueryOnly:
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeNotFound, Message: "job " + req.Job[:8] + " never started here"}}, false
	}
	if u.jobs == nil {
		u.jobs = map[jobKey]*jobRecord{}
	}
	u.jobs[k] = &jobRecord{}
	return wire.JobReply{}, true
}

// finish records agent i's answer to job.
func (u *updater) finish(i int, job string, rep wire.JobReply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.jobs[jobKey{i, job}] = &jobRecord{done: true, reply: rep}
}

// sampled reports whether agent i stages the binary and counts what it
// receives.
func (u *updater) sampled(i int) bool { return u.every > 0 && i%u.every == 0 }

// serve makes every agent of f answer update jobs.
func (u *updater) serve(ctx context.Context, f *fleet) {
	for i, a := range f.agents {
		a.h.SetStreamHandler(wire.ProtoJob, func(s network.Stream) { u.handle(ctx, i, a, s) })
	}
}

// fail records agent i's failure.
func (u *updater) fail(i int, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failed++
	if len(u.errs) < 5 {
		u.errs = append(u.errs, fmt.Errorf("agent %d: %w", i, err))
	}
}

// err returns the failures so far, or nil.
func (u *updater) err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failed == 0 {
		return nil
	}
	return fmt.Errorf("%d agents failed an update, first: %w", u.failed, errors.Join(u.errs...))
}

// handle answers one job stream: the update, the reply, the check-in.
func (u *updater) handle(ctx context.Context, i int, a *agent, s network.Stream) {
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, updateJobLimit)
	defer cancel()
	s.SetDeadline(time.Now().Add(updateJobLimit))
	var req wire.JobRequest
	if err := wire.NewReader(s).Read(wire.MaxControl+64<<10, &req); err != nil {
		s.Reset()
		u.fail(i, fmt.Errorf("read the job: %w", err))
		return
	}
	if req.Update == nil {
		wire.Write(s, &wire.JobReply{Error: &wire.Error{Code: wire.CodeBadRequest, Message: "this agent takes update jobs only"}})
		u.fail(i, errors.New("a job without an update"))
		return
	}
	if rep, first := u.take(i, &req); !first {
		wire.Write(s, &rep)
		return
	}
	u.update(ctx, i, a, &req, s)
}

// update installs the job's release, answers the job and checks in on
// the new version, as the new binary would once started.
func (u *updater) update(ctx context.Context, i int, a *agent, req *wire.JobRequest, s network.Stream) {
	state := filepath.Join(u.dir, fmt.Sprintf("agent-%05d", i))
	defer os.RemoveAll(state)
	t, err := u.install(ctx, i, a, req, state)
	if err != nil {
		msg := "update to " + req.Update.Version + " refused: " + err.Error()
		rep := wire.JobReply{ExitCode: -1, Error: &wire.Error{Code: wire.CodeForbidden, Message: msg}}
		u.finish(i, req.Job, rep)
		wire.Write(s, &rep)
		u.fail(i, err)
		return
	}
	rep := wire.JobReply{Output: fmt.Sprintf("%s staged; restarting into it (health window %s)", t.To, t.Window())}
	u.finish(i, req.Job, rep)
	// As sessiond: a reply that does not get through is replayed when
	// the broker asks again; the agent restarts into the update anyway.
	wire.Write(s, &rep)
	delivered(s)
	if err := u.checkIn(ctx, i, a, t, state); err != nil {
		u.fail(i, err)
		return
	}
	u.updated.Add(1)
}

// delivered waits, bounded, until the broker has read the job's reply
// and closed its side, as sessiond does before it hands over.
func delivered(s network.Stream) {
	s.CloseWrite()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, io.LimitReader(s, 4096))
}

// install checks the order, downloads the binary and, for a sampled
// agent, stages it next to a stand-in executable in state and saves the
// trial. It returns the trial the new binary would run.
func (u *updater) install(ctx context.Context, i int, a *agent, req *wire.JobRequest, state string) (*update.Trial, error) {
	o := req.Update
	plan, err := update.Check(o, u.pinned, u.from, runtime.GOOS+"/"+runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	p := update.PathsFor(filepath.Join(state, "bin", "sessiond"))
	stage := u.sampled(i)
	if stage {
		if err := os.MkdirAll(filepath.Dir(p.Exe), 0o755); err != nil {
			return nil, err
		}
		if err := update.CheckWritable(p); err != nil {
			return nil, err
		}
	}
	f := update.Fetcher{Host: a.h, Dir: update.Dir(state),
		Broker: func(context.Context) (peer.ID, error) { return u.broker, nil }}
	blob, err := f.Fetch(ctx, plan.Binary)
	if err != nil {
		return nil, err
	}
	defer os.Remove(blob)
	t := update.NewTrial(u.from, plan.Manifest.Version, time.Duration(o.HealthWindowSec)*time.Second, time.Now())
	t.Rollout, t.Job, t.Exe, t.SHA256, t.Size = o.Rollout, req.Job, p.Exe, plan.Binary.SHA256, plan.Binary.Size
	t.Manifest, t.Signature = o.Manifest, o.Signature
	if !stage {
		return t, nil
	}
	if err := update.Stage(blob, plan.Binary, p); err != nil {
		return nil, err
	}
	if st, err := os.Stat(p.New); err != nil || st.Size() != plan.Binary.Size || st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("staged %s is not the release's executable: %v %v", p.New, st, err)
	}
	if err := t.Save(state); err != nil {
		return nil, err
	}
	u.staged.Add(1)
	return t, nil
}

// checkIn is the new binary's first check-in: reason "updated", the new
// version in the snapshot and the update report. A sampled agent then
// marks its trial healthy, as the new binary does once the broker has it.
func (u *updater) checkIn(ctx context.Context, i int, a *agent, t *update.Trial, state string) error {
	rep := t.Report(wire.ReasonUpdated, "", time.Now())
	ci := wire.CheckIn{MachineID: a.id.String(), Seq: uint64(time.Now().UnixNano()), Reason: wire.ReasonUpdated,
		Snapshot: snapshot(i, t.To), Update: &rep}
	if err := callCheckIn(ctx, a, u.broker, &ci); err != nil {
		return err
	}
	if u.sampled(i) {
		return update.MarkHealthy(state, t)
	}
	return nil
}

// snapshot is the small inventory the simulated agents report.
func snapshot(i int, version string) wire.Snapshot {
	return wire.Snapshot{CollectedAt: time.Now().UTC(), Hostname: fmt.Sprintf("agent-%05d", i),
		OS: wire.OS{Family: "linux"}, AgentVersion: version}
}

// callCheckIn sends ci over a's bridge and waits for the broker's ack.
func callCheckIn(ctx context.Context, a *agent, broker peer.ID, ci *wire.CheckIn) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var ack wire.CheckInAck
	if err := bridge.Call(cctx, a.h, broker, wire.ProtoCheckIn, ci, &ack, wire.MaxControl); err != nil {
		return fmt.Errorf("check-in (%s): %w", ci.Reason, err)
	}
	if ack.Error != nil {
		return fmt.Errorf("check-in (%s) refused: %w", ci.Reason, ack.Error)
	}
	return nil
}

// checkInVersion has every agent of f check in once on version, as each
// does on connecting: the broker's record then holds the version the
// rollout plans from.
func checkInVersion(ctx context.Context, f *fleet, broker peer.ID, version string) error {
	seq := uint64(time.Now().UnixNano())
	return forEach(ctx, len(f.agents), dialWorkers, func(i int) error {
		ci := wire.CheckIn{MachineID: f.agents[i].id.String(), Seq: seq, Reason: wire.ReasonRestart, Snapshot: snapshot(i, version)}
		if err := callCheckIn(ctx, f.agents[i], broker, &ci); err != nil {
			return fmt.Errorf("agent %d: %w", i, err)
		}
		return nil
	})
}

// countingConn is a sampled agent's UDP socket, counting the datagrams it
// receives and their bytes: the QUIC packets the broker sent it, with
// their headers, acks and retransmissions (IP and UDP headers aside).
// An agent has no other peer, so that is the broker's egress to it.
//
// It forwards the socket's buffer settings and raw access, but not
// ReadMsgUDP, so quic-go reads through ReadFrom, one datagram per call,
// rather than in batches that bypass the wrapper. That costs this process
// a system call per datagram for the few sampled agents, not the broker,
// whose sending is the same for every agent.
type countingConn struct {
	c       *net.UDPConn
	bytes   atomic.Int64
	packets atomic.Int64
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.c.ReadFrom(p)
	if n > 0 {
		c.bytes.Add(int64(n))
		c.packets.Add(1)
	}
	return n, addr, err
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) { return c.c.WriteTo(p, addr) }
func (c *countingConn) Close() error                                 { return c.c.Close() }
func (c *countingConn) LocalAddr() net.Addr                          { return c.c.LocalAddr() }
func (c *countingConn) SetDeadline(t time.Time) error                { return c.c.SetDeadline(t) }
func (c *countingConn) SetReadDeadline(t time.Time) error            { return c.c.SetReadDeadline(t) }
func (c *countingConn) SetWriteDeadline(t time.Time) error           { return c.c.SetWriteDeadline(t) }
func (c *countingConn) SetReadBuffer(n int) error                    { return c.c.SetReadBuffer(n) }
func (c *countingConn) SetWriteBuffer(n int) error                   { return c.c.SetWriteBuffer(n) }
func (c *countingConn) SyscallConn() (syscall.RawConn, error)        { return c.c.SyscallConn() }

// counters are the counting sockets of the sampled agents.
type counters struct {
	mu    sync.Mutex
	conns []*countingConn // mu guards conns
}

// wrap counts c and returns it wrapped.
func (cs *counters) wrap(c *net.UDPConn) net.PacketConn {
	cc := &countingConn{c: c}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.conns = append(cs.conns, cc)
	return cc
}

// read returns the bytes and datagrams received so far, in all.
func (cs *counters) read() (bytes, packets int64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.conns {
		bytes += c.bytes.Load()
		packets += c.packets.Load()
	}
	return bytes, packets
}
