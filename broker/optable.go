package broker

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/brokers"
	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/queue"
	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/releases"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/rollout"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// rooms are the rooms operations are answered by.
type rooms struct {
	store    *store.Store
	fleet    *fleet
	reach    *reach.Layer
	sessions *session.Service
	queue    *queue.Queue
	alerts   *alerts.Alerts
	audit    *audit.Log
	admit    *enrol.Admission
	brokers  *brokers.List
	repl     *replicate.Replicator
	releases *releases.Room
	rollouts *rollout.Room
	now      func() time.Time
	logger   *slog.Logger
	// console issues sign-in codes; set once the console is made, since
	// the console itself runs operations.
	console interface {
		IssueCode(t *wire.Technician, techID peer.ID) (wire.ConsoleLogin, *wire.Error)
	}
}

// newOps builds the operation table from the rooms that answer each
// operation, and registers readymesh_tech_requests_total on reg.
func newOps(r *rooms, reg prometheus.Registerer) *ops {
	o := &ops{store: r.store, table: map[string]op{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_tech_requests_total",
			Help: "Technician requests by operation."}, []string{"op"})}
	reg.MustRegister(o.requests)
	for name, f := range r.anyone() {
		o.table[name] = op{run: f}
	}
	for name, f := range r.adminOnly() {
		o.table[name] = op{admin: true, run: f}
	}
	for name, f := range r.offboardOps() {
		o.table[name] = op{admin: true, run: f}
	}
	anyone, admin := releaseOps(r.releases)
	for name, f := range anyone {
		o.table[name] = op{run: f}
	}
	for name, f := range admin {
		o.table[name] = op{admin: true, run: f}
	}
	anyone, admin = rolloutOps(r.rollouts)
	for name, f := range anyone {
		o.table[name] = op{run: f}
	}
	for name, f := range admin {
		o.table[name] = op{admin: true, run: f}
	}
	anyone, admin = policyOps(r)
	for name, f := range anyone {
		o.table[name] = op{run: f}
	}
	for name, f := range admin {
		o.table[name] = op{admin: true, run: f}
	}
	return o
}

type opFunc = func(context.Context, *call) (any, *wire.Error)

// anyone is the operations every technician may run, within its scope.
func (r *rooms) anyone() map[string]opFunc {
	return map[string]opFunc{
		wire.OpWhoAmI:       func(_ context.Context, c *call) (any, *wire.Error) { return c.t, nil },
		wire.OpConsoleLogin: func(_ context.Context, c *call) (any, *wire.Error) { return r.console.IssueCode(c.t, c.id) },
		wire.OpClientsList:  r.listClients,
		wire.OpMachines:     withArgs(r.machines),
		wire.OpShow: withArgs(func(_ context.Context, c *call, a *wire.ShowArgs) (any, *wire.Error) {
			return r.fleet.Show(c.t, a.Machine)
		}),
		wire.OpBrokers: func(_ context.Context, c *call) (any, *wire.Error) {
			return r.brokers.MembersFor(c.t, r.store, r.reach), nil
		},
		wire.OpWaitOnline: withArgs(r.waitOnline),
		wire.OpSessionOpen: func(ctx context.Context, c *call) (any, *wire.Error) {
			return r.sessions.Open(ctx, c.t, c.id, c.req.Args)
		},
		wire.OpSessionICE: func(_ context.Context, c *call) (any, *wire.Error) { return r.sessions.ICE(c.id), nil },
		wire.OpTranscript: withArgs(func(_ context.Context, c *call, a *wire.TranscriptArgs) (any, *wire.Error) {
			return r.sessions.Transcripts(c.t, a)
		}),
		wire.OpAudit:    withArgs(func(_ context.Context, c *call, a *wire.AuditArgs) (any, *wire.Error) { return r.audit.Query(c.t, a) }),
		wire.OpQueueAdd: withArgs(func(_ context.Context, c *call, a *wire.QueueArgs) (any, *wire.Error) { return r.queue.Add(c.t, a) }),
		wire.OpQueueList: withArgs(func(_ context.Context, c *call, a *wire.QueueListArgs) (any, *wire.Error) {
			return r.queue.List(c.t, a)
		}),
		wire.OpQueueShow: withArgs(func(_ context.Context, c *call, a *wire.JobArgs) (any, *wire.Error) { return r.queue.Show(c.t, a) }),
		wire.OpQueueCancel: withArgs(func(_ context.Context, c *call, a *wire.JobArgs) (any, *wire.Error) {
			return r.queue.Cancel(c.t, a)
		}),
		wire.OpAlerts: func(_ context.Context, c *call) (any, *wire.Error) { return r.alerts.List(c.t), nil },
	}
}

// adminOnly is the operations only admin technicians may run.
func (r *rooms) adminOnly() map[string]opFunc {
	return map[string]opFunc{
		wire.OpClientsCreate: withArgs(r.createClient),
		wire.OpTokensCreate: withArgs(func(_ context.Context, c *call, a *wire.TokenArgs) (any, *wire.Error) {
			return r.admit.CreateToken(c.t, a)
		}),
		wire.OpTechniciansAdd: withArgs(func(_ context.Context, c *call, a *wire.TechnicianArgs) (any, *wire.Error) {
			return r.admit.AddTechnician(a)
		}),
		wire.OpTechniciansList: func(context.Context, *call) (any, *wire.Error) {
			ts, err := r.store.Technicians()
			return ts, serve.StoreError(err)
		},
		wire.OpConsentSet: withArgs(func(_ context.Context, c *call, a *wire.ConsentPolicyArgs) (any, *wire.Error) {
			return r.sessions.SetConsent(c.t, a)
		}),
	}
}

// machines runs OpMachines: the cards t may see, in queue order.
func (r *rooms) machines(_ context.Context, c *call, a *wire.MachinesArgs) (any, *wire.Error) {
	if err := readiness.ValidateArgs(a); err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	return r.fleet.Cards(c.t, *a), nil
}

// waitOnline runs OpWaitOnline: the machine's card once it is reachable,
// through this broker or another of the cluster.
func (r *rooms) waitOnline(ctx context.Context, c *call, a *wire.WaitArgs) (any, *wire.Error) {
	m, werr := scope.Find(r.store, c.t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	m, werr = r.reach.WaitOnline(ctx, m, time.Duration(a.TimeoutSec)*time.Second)
	if werr != nil {
		return nil, werr
	}
	return r.fleet.Card(&m), nil
}

// createClient runs OpClientsCreate.
func (r *rooms) createClient(_ context.Context, _ *call, a *wire.ClientArgs) (any, *wire.Error) {
	cl, err := r.store.CreateClient(a.Name, r.now())
	if err == nil {
		r.repl.Written(store.Key{Kind: store.KindClient, ID: a.Name})
	}
	return cl, serve.StoreError(err)
}

// listClients runs OpClientsList: the clients c's technician may see.
func (r *rooms) listClients(_ context.Context, c *call) (any, *wire.Error) {
	cs, err := r.store.Clients()
	return scope.Clients(c.t, cs), serve.StoreError(err)
}
