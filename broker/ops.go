package broker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// ops is the technician operations: what meshctl and the web console ask
// of the broker (wire.ProtoTech), dispatched to the rooms that answer
// them. Every operation runs for a technician looked up by the key the
// bridge (or the console's sign-in) authenticated, within its scope.
type ops struct {
	table    map[string]op
	store    *store.Store
	requests *prometheus.CounterVec
}

// op is one technician operation.
type op struct {
	// admin: only admin technicians may run it.
	admin bool
	run   func(ctx context.Context, c *call) (any, *wire.Error)
}

// call is one operation's request.
type call struct {
	t   *wire.Technician
	id  peer.ID // the technician's key
	req *wire.Request
}

// withArgs adapts an operation that takes decoded, validated arguments.
func withArgs[A any](f func(ctx context.Context, c *call, a *A) (any, *wire.Error)) func(context.Context, *call) (any, *wire.Error) {
	return func(ctx context.Context, c *call) (any, *wire.Error) {
		var a A
		if werr := serve.Args(c.req.Op, c.req.Args, &a); werr != nil {
			return nil, werr
		}
		return f(ctx, c, &a)
	}
}

// asTech is an operation that decodes its arguments and passes them, with
// the calling technician, to f: the shape of the rooms' operations.
func asTech[A, R any](f func(t *wire.Technician, a *A) (R, *wire.Error)) func(context.Context, *call) (any, *wire.Error) {
	return withArgs(func(_ context.Context, c *call, a *A) (any, *wire.Error) { return f(c.t, a) })
}

// Do runs operation name for technician t with args, encoded as meshctl
// encodes them: the web console's way in.
func (o *ops) Do(ctx context.Context, t *wire.Technician, techID peer.ID, name string, args any) (any, *wire.Error) {
	req := &wire.Request{Op: name}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "%v", err)
		}
		req.Args = raw
	}
	return o.run(ctx, &call{t: t, id: techID, req: req})
}

// run dispatches one operation.
func (o *ops) run(ctx context.Context, c *call) (any, *wire.Error) {
	op, ok := o.table[c.req.Op]
	if !ok {
		return nil, wire.Errorf(wire.CodeBadRequest, "unknown operation %q", c.req.Op)
	}
	if op.admin && !c.t.Admin {
		return nil, wire.Errorf(wire.CodeForbidden, "%s needs an admin technician; %s is not one", c.req.Op, c.t.Name)
	}
	return op.run(ctx, c)
}

// unknownOp is the label of operations the broker does not know. An
// operation's name is the caller's input: only names in the table become
// label values, so made-up names cost one series, not one each.
const unknownOp = "unknown"

// label is the metric label (and refusal log name) of operation name.
func (o *ops) label(name string) string {
	if _, ok := o.table[name]; ok {
		return name
	}
	return unknownOp
}

// techSpec is how technician request streams open.
var techSpec = serve.Spec{Name: "tech", Deadline: time.Minute, MaxRequest: wire.MaxControl,
	Reply: func() wire.Refusable { return &wire.Reply{} }}

// Deadlines of operations that wait longer than a request does.
var opDeadline = map[string]time.Duration{
	// The agent may wait for the person at the machine to approve.
	wire.OpSessionOpen: 4 * time.Minute,
	wire.OpWaitOnline:  time.Hour + time.Minute,
}

// serve answers one technician request (wire.ProtoTech).
func (o *ops) serve(s *serve.Stream, req *wire.Request) (any, error) {
	t, err := o.store.TechnicianByKey(s.Remote.String())
	if err != nil {
		// Admitted a moment ago, disabled or removed since.
		return nil, technicianRefusal(t, err)
	}
	s.Op = o.label(req.Op)
	o.requests.WithLabelValues(s.Op).Inc()
	if e := wire.CheckVersions(req.Versions, "meshctl", "broker "+buildinfo.Version); e != nil {
		return nil, e
	}
	if d, ok := opDeadline[req.Op]; ok {
		s.SetDeadline(time.Now().Add(d))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchConn(ctx, cancel, s)
	result, werr := o.run(ctx, &call{t: &t, id: s.Remote, req: req})
	if werr != nil {
		return nil, werr
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	return &wire.Reply{Result: raw}, nil
}

// watchConn cancels a request's context when the technician's connection
// closes, for requests that wait (wait.online, a session waiting for
// consent), until ctx ends.
func watchConn(ctx context.Context, cancel context.CancelFunc, s *serve.Stream) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if s.Conn().IsClosed() {
				cancel()
				return
			}
		}
	}
}
