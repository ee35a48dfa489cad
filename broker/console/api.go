package console

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/readymesh/readymesh/peer/wire"
)

// Handler returns the console and its API, mounted on mux beside the
// routes already there (health, metrics), with net/http's cross-origin
// protection in front.
func (c *Console) Handler(mux *http.ServeMux) http.Handler {
	assets := assetHandler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		assets.ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /api/login", c.login)
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request, a *authed)) {
		mux.HandleFunc(pattern, c.signedInOnly(pattern, h))
	}
	api("POST /api/logout", c.logout)
	api("GET /api/me", c.me)
	api("GET /api/machines", c.machines)
	api("GET /api/machines/{id}", c.machine)
	api("GET /api/alerts", c.op(wire.OpAlerts, nil))
	api("GET /api/queue", c.op(wire.OpQueueList, func(r *http.Request) any {
		return wire.QueueListArgs{Machine: r.URL.Query().Get("machine"), State: r.URL.Query().Get("state")}
	}))
	api("GET /api/audit", c.op(wire.OpAudit, func(r *http.Request) any {
		n, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		return wire.AuditArgs{Limit: n, Machine: r.URL.Query().Get("machine")}
	}))
	api("POST /api/queue/{id}/cancel", c.op(wire.OpQueueCancel, func(r *http.Request) any {
		return wire.JobArgs{ID: r.PathValue("id")}
	}))
	// Rollouts are read-only here: starting, pausing and aborting one is
	// an admin's decision made with meshctl, where the release key is.
	// Each technician sees what the operation shows it: the rollouts that
	// hold machines of its clients, and only those machines.
	api("GET /api/rollouts", c.op(wire.OpRolloutList, nil))
	api("GET /api/rollouts/{id}", c.op(wire.OpRolloutStatus, func(r *http.Request) any {
		return wire.RolloutIDArgs{ID: r.PathValue("id")}
	}))
	api("GET /api/ice", c.ice)
	api("POST /api/sessions", c.openSession)
	api("GET /api/events", c.events)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, wire.Errorf(wire.CodeNotFound, "no API %s %s", r.Method, r.URL.Path))
	})
	return http.NewCrossOriginProtection().Handler(mux)
}

// signedInOnly wraps an API handler: it runs only for a signed-in
// request, and a refusal it writes is logged and counted by route.
func (c *Console) signedInOnly(pattern string, h func(w http.ResponseWriter, r *http.Request, a *authed)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := c.auth(w, r)
		if !ok {
			return
		}
		rec := &statusWriter{ResponseWriter: w}
		h(rec, r, a)
		if rec.status >= 400 {
			c.deps.Refused("console:"+pattern, strconv.Itoa(rec.status)) // the pattern, not the path: bounded labels
			c.cfg.Logger.Info("console request refused", "technician", a.tech.Name, "method", r.Method,
				"path", r.URL.Path, "status", rec.status)
		}
	}
}

func (c *Console) me(w http.ResponseWriter, r *http.Request, a *authed) {
	writeJSON(w, http.StatusOK, map[string]any{"technician": publicTech(a.tech), "csrf": a.ws.csrf, "broker": c.cfg.Name})
}

// call runs a technician operation as meshctl would.
func (c *Console) call(ctx context.Context, a *authed, op string, args any) (any, *wire.Error) {
	return c.deps.Ops.Do(ctx, &a.tech, a.id, op, args)
}

// op serves a technician operation, its arguments from args.
func (c *Console) op(name string, args func(*http.Request) any) func(http.ResponseWriter, *http.Request, *authed) {
	return func(w http.ResponseWriter, r *http.Request, a *authed) {
		var v any
		if args != nil {
			v = args(r)
		}
		c.reply(w, r, a, name, v)
	}
}

// reply runs op and writes its result or its error.
func (c *Console) reply(w http.ResponseWriter, r *http.Request, a *authed, op string, args any) {
	res, werr := c.call(r.Context(), a, op, args)
	if werr != nil {
		writeErr(w, werr)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// machineArgs reads the fleet filters of a console URL.
func machineArgs(q url.Values) (wire.MachinesArgs, *wire.Error) {
	a := wire.MachinesArgs{Client: q.Get("client"), Readiness: q.Get("readiness"), PendingUpdate: q.Get("pending_update")}
	switch q.Get("online") {
	case "":
	case "true", "false":
		on := q.Get("online") == "true"
		a.Online = &on
	default:
		return a, wire.Errorf(wire.CodeBadRequest, "online must be true or false")
	}
	return a, nil
}

func (c *Console) machines(w http.ResponseWriter, r *http.Request, a *authed) {
	args, werr := machineArgs(r.URL.Query())
	if werr != nil {
		writeErr(w, werr)
		return
	}
	c.reply(w, r, a, wire.OpMachines, args)
}

func (c *Console) machine(w http.ResponseWriter, r *http.Request, a *authed) {
	c.reply(w, r, a, wire.OpShow, wire.ShowArgs{Machine: r.PathValue("id")})
}
