package sessiond

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/ipc"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/update"
)

// The control channel lets local commands (`sessiond checkin`, `sessiond
// status`, `sessiond approve` …) talk to the running agent: one JSON
// request and one JSON reply per connection. Package ipc carries it: a
// Unix socket in the state directory (0700, the socket 0600) on Linux and
// macOS, a named pipe admitting the agent's account, SYSTEM and
// Administrators on Windows. Either way only the agent's owner and the
// machine's administrators can open it.

type controlRequest struct {
	Op  string `json:"op"`            // checkin, status, pause-input, resume-input, requests, approve, deny, trust-release-key
	Arg string `json:"arg,omitempty"` // approve and deny: a request ID, or "" for all (approve only); trust-release-key: the key
	// Replace lets trust-release-key replace another pinned key.
	Replace bool `json:"replace,omitempty"`
}

// Status is the agent's own view, as `sessiond status` prints it.
type Status struct {
	MachineID   string               `json:"machine_id"`
	Name        string               `json:"name"`
	Client      string               `json:"client"`
	Broker      string               `json:"broker"`
	BridgeUp    bool                 `json:"bridge_up"`
	LastError   string               `json:"last_error,omitempty"`
	LastCheckIn *localdb.LastCheckIn `json:"last_check_in"`
	// SessionPort is the UDP port of the live-session socket.
	SessionPort int `json:"session_port"`
	// InputPaused: remote input is paused (sessiond pause-input).
	InputPaused bool `json:"input_paused"`
	// Sessions are the live sessions open now, with the path each uses.
	Sessions []wire.SessionInfo `json:"sessions"`
	// Version is the agent's version; ReleaseKeyID the ID of the release
	// key it pinned, empty when none is (every update is refused then).
	Version      string `json:"version"`
	ReleaseKeyID string `json:"release_key_id,omitempty"`
	// Trial is the update on trial now: this agent is the new binary,
	// its watchdog the previous one.
	Trial *TrialStatus `json:"trial,omitempty"`
	// LastUpdate is how the last update ended.
	LastUpdate *wire.UpdateReport `json:"last_update,omitempty"`
	// Away is why the bridge is held down (asleep, shutdown, quiet),
	// with what the agent told its broker; nil while it is not.
	Away *wire.Leaving `json:"away,omitempty"`
	// Metered says whether the connection is metered now, OnMetered the
	// policy in force (the fleet's, else --on-metered) and UDPBlockedSince
	// since when bridges have fallen back from QUIC.
	Metered         bool       `json:"metered"`
	OnMetered       string     `json:"on_metered"`
	UDPBlockedSince *time.Time `json:"udp_blocked_since,omitempty"`
}

// TrialStatus is an update on trial, as sessiond status shows it.
type TrialStatus struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Rollout  string    `json:"rollout,omitempty"`
	Starts   int       `json:"starts"`
	Deadline time.Time `json:"deadline"`
	Phase    string    `json:"phase"`
}

type controlReply struct {
	Error    string                `json:"error,omitempty"`
	Seq      uint64                `json:"seq,omitempty"`
	Reason   string                `json:"reason,omitempty"`
	Status   *Status               `json:"status,omitempty"`
	Requests []wire.ConsentRequest `json:"requests,omitempty"`
	Key      *KeyChange            `json:"key,omitempty"`
}

// listenControl opens the control channel of stateDir. The local
// database's lock, taken in New, proves no other agent runs on it, so a
// socket a crashed agent left is removed.
func listenControl(stateDir string) (net.Listener, error) {
	return ipc.Listen(stateDir)
}

// controlRetry is how often an agent without its control channel tries to
// open it again.
const controlRetry = 30 * time.Second

// A failed Accept is tried again after acceptBackoffMin, doubling up to
// acceptBackoffMax while it keeps failing, as net/http's Server does.
// The listener stays open meanwhile: the Windows pipe listener's errors
// are transient (its next Accept makes the pipe instance the last one
// could not), and closing it would give up the pipe's name.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// runControl serves the control channel until ctx ends. When it cannot be
// opened (on Windows another process may hold the pipe's name while the
// agent restarts), the agent runs on without it, says so, and tries again
// every controlRetry: the bridge, check-ins and sessions matter more than
// local commands, and an agent that refused to start would be down.
func (a *Agent) runControl(ctx context.Context) {
	for {
		ln, err := listenControl(a.cfg.StateDir)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { ln.Close() })
			a.serveControl(ctx, ln)
			stop()
			ln.Close()
			if ctx.Err() != nil {
				return
			}
			a.log.Error("control channel closed under the agent; opening it again", "in", controlRetry)
		} else {
			a.log.Error("no control channel: local status, check-in and consent commands cannot reach this agent; trying again",
				"err", err, "every", controlRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(controlRetry):
		}
	}
}

// serveControl accepts control connections until ln is closed or ctx
// ends. Any other Accept error is waited out (acceptBackoffMin, doubling)
// and Accept tried again.
func (a *Agent) serveControl(ctx context.Context, ln net.Listener) {
	var delay time.Duration
	for failures := 0; ; {
		c, err := ln.Accept()
		if err == nil {
			delay, failures = 0, 0
			go a.serveControlConn(ctx, c)
			continue
		}
		if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return
		}
		delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
		// Logged on the 1st, 2nd, 4th, 8th… failure in a row: a listener
		// that keeps failing is seen without filling the log.
		if failures++; failures&(failures-1) == 0 {
			a.log.Warn("control channel: accept failed; trying again", "err", err, "in", delay, "failures", failures)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (a *Agent) serveControlConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var req controlRequest
	if err := json.NewDecoder(io.LimitReader(c, 4096)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(controlReply{Error: "bad request: " + err.Error()})
		return
	}
	var reply controlReply
	switch req.Op {
	case "checkin":
		r := a.requestCheckIn(ctx)
		reply = controlReply{Seq: r.Seq, Reason: r.Reason}
		if r.Err != nil {
			reply.Error = r.Err.Error()
		}
	case "status":
		reply.Status = a.status()
	case "requests":
		reply.Requests = a.waiting()
	case "approve", "deny":
		if req.Op == "deny" && req.Arg == "" {
			reply.Error = "deny takes a request ID"
			break
		}
		done, err := a.answer(req.Arg, req.Op == "approve")
		reply.Requests = done
		if err != nil {
			reply.Error = err.Error()
		}
	case "pause-input", "resume-input":
		a.setInputPaused(req.Op == "pause-input")
		reply.Status = a.status()
	case "trust-release-key":
		reply.Key, reply.Error = a.trustKey(req.Arg, req.Replace)
	default:
		reply.Error = fmt.Sprintf("unknown op %q", req.Op)
	}
	json.NewEncoder(c).Encode(reply)
}

func (a *Agent) status() *Status {
	a.mu.Lock()
	st := &Status{MachineID: a.key.ID.String(), Name: a.enrolment.Name, Client: a.enrolment.Client,
		Broker: a.connected.String(), BridgeUp: a.up, LastError: a.lastErr, Away: a.hold.leaving,
		Metered: a.metered, UDPBlockedSince: a.udpBlockedAt}
	a.mu.Unlock()
	st.OnMetered, _ = a.onMetered()
	if last, ok, _ := a.db.Last(); ok {
		st.LastCheckIn = &last
	}
	st.SessionPort, st.Sessions = a.sessions.Port(), a.liveSessions()
	st.InputPaused = a.channels.InputPaused()
	a.updateStatus(st)
	return st
}

// updateStatus fills in the update part of the status.
func (a *Agent) updateStatus(st *Status) {
	st.Version = buildinfo.Version
	if e, err := a.db.Enrolment(); err == nil {
		st.ReleaseKeyID = keyID(e.ReleaseKey)
	}
	if t, _ := update.LoadTrial(a.cfg.StateDir); t != nil {
		st.Trial = &TrialStatus{From: t.From, To: t.To, Rollout: t.Rollout, Starts: t.Starts, Deadline: t.Deadline, Phase: t.Phase}
	}
	if o, _ := update.LoadOutcome(a.cfg.StateDir); o != nil {
		st.LastUpdate = &o.Report
	}
}

// trustKey pins a release key for the control channel; the error is the
// reply's.
func (a *Agent) trustKey(key string, replace bool) (*KeyChange, string) {
	key, err := canonicalKey(key)
	if err == nil && key == "" {
		err = errors.New("no key given")
	}
	if err != nil {
		return nil, "trust-release-key: " + err.Error()
	}
	ch, err := pinKey(a.db, key, replace, a.log)
	if err != nil {
		return nil, err.Error()
	}
	return &ch, ""
}

// Control sends one request to the agent running on stateDir and returns
// its reply. It is what `sessiond checkin` and `sessiond status` use.
func Control(ctx context.Context, stateDir, op string) (seq uint64, reason string, st *Status, err error) {
	r, err := ControlArg(ctx, stateDir, op, "")
	if r == nil {
		return 0, "", nil, err
	}
	return r.Seq, r.Reason, r.Status, err
}

// ControlReply is the running agent's answer to a control request.
type ControlReply = controlReply

// ControlArg sends one request with an argument and returns the reply.
func ControlArg(ctx context.Context, stateDir, op, arg string) (*ControlReply, error) {
	return control(ctx, stateDir, controlRequest{Op: op, Arg: arg})
}

// control sends req to the agent running on stateDir and returns its
// reply.
func control(ctx context.Context, stateDir string, req controlRequest) (*ControlReply, error) {
	c, err := ipc.Dial(ctx, stateDir)
	if err != nil {
		return nil, fmt.Errorf("no agent running on %s: %w", stateDir, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var reply controlReply
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(c, 1<<20))).Decode(&reply); err != nil {
		return nil, fmt.Errorf("agent reply: %w", err)
	}
	if reply.Error != "" {
		return &reply, errors.New(reply.Error)
	}
	return &reply, nil
}
