package broker

import (
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/checkin"
	"github.com/readymesh/readymesh/broker/console"
	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/queue"
	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/relay"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/session"
)

// assemble builds the rooms, each given only what it needs, in the order
// of what they need: replication, the relay, admission and the gossip
// pools first, then the reachability and session layers, then what reads
// them (the card join, the queue, the operations, the console).
func (b *Broker) assemble() error {
	c := &b.cfg
	b.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b.serve = serve.New(b.log, b.reg)
	b.audit = audit.New(b.store, b.log, c.Now)
	b.repl = replicate.New(replicate.Config{Region: c.Region, Logger: b.log, Now: c.Now}, b.store, b.host)
	b.relay = relay.New(relay.Config{MaxSessions: c.RelayMaxSessions, MaxPerPeer: c.RelayMaxPerPeer,
		MaxBytes: c.RelayMaxBytes, MaxDuration: c.RelayMaxDuration, Logger: b.log, Now: c.Now, Metrics: b.reg})
	b.admit = enrol.New(enrol.Config{DataDir: c.DataDir, TokenTTL: c.TokenTTL, LoginTTL: c.LoginTTL,
		Logger: b.log, Now: c.Now, Metrics: b.reg}, b.store, b, b.repl)
	if err := b.joinCluster(); err != nil {
		return err
	}
	if err := b.assembleLayers(); err != nil {
		return err
	}
	b.releases = newReleases(b)
	b.rollouts = newRollouts(b, b.store)
	b.fleet = &fleet{store: b.store, reach: b.reach, status: b.sessions.Status(), now: c.Now, policy: c.Readiness,
		rollouts: b.rollouts}
	b.queue = queue.New(queue.Config{Name: c.Name, ID: b.ID(), Logger: b.log, Now: c.Now},
		queue.Deps{Store: b.store, Reach: b.reach, Sessions: b.sessions.Status(), Fleet: b.fleet,
			Host: b.host, Key: b.key.Priv, Audit: b.audit, Replicated: b.repl.Written, Gate: b.rollouts, Releases: b.store})
	b.reach.SetWork(b.queue)
	b.checkins = checkin.New(b.store, b.repl, func() { b.queue.Kick(); b.rollouts.Kick() }, c.Now, c.MaxSnapshot, b.reg)
	b.checkins.SetQuiet(b.reach.QuietCheckIn)
	var members alerts.Members // nil when the broker runs alone
	if b.cluster != nil {
		members = b.cluster
	}
	b.alerts = alerts.New(alerts.Config{Every: c.AlertEvery, Offline: c.AlertOffline, Away: c.AlertAway,
		OverdueIntervals: c.AlertOverdueIntervals, NeverCheckedIn: c.AlertNeverCheckedIn,
		Policy: c.Readiness, Steps: b.rollouts, Webhook: c.AlertWebhook, Name: c.Name, Logger: b.log, Now: c.Now},
		b.store, b.reach, members)
	r := &rooms{store: b.store, fleet: b.fleet, reach: b.reach, sessions: b.sessions, queue: b.queue,
		alerts: b.alerts, audit: b.audit, admit: b.admit, brokers: b.brokers, repl: b.repl, releases: b.releases, rollouts: b.rollouts,
		now: c.Now, logger: b.log}
	b.ops = newOps(r, b.reg)
	b.reg.MustRegister(b.fleetMetrics())
	b.console = console.New(console.Config{Name: c.Name, URL: c.ConsoleURL, Addr: httpAddr(b.httpLn),
		WriteTimeout: c.HTTPWriteTimeout, Logger: b.log, Now: c.Now},
		console.Deps{Ops: b.ops, Sessions: b.sessions, Store: b.store, ICE: b.sessions, Audit: b.audit,
			Changes: b.changes, Refused: b.serve.Refused})
	r.console = b.console
	b.revoker.host, b.revoker.online, b.revoker.console, b.revoker.log = b.host, b.reach.OnlineIDs, b.console, b.log
	return nil
}

// assembleLayers builds the reachability and session layers.
func (b *Broker) assembleLayers() error {
	c := &b.cfg
	status := session.NewStatus(c.BusyLoad, b.changes.Notify)
	b.reach = reach.New(reach.Config{Name: c.Name, Heartbeat: c.Heartbeat, MissedHeartbeats: c.MissedHeartbeats,
		LastSeenFlush: c.LastSeenFlush, AcceptRate: c.AcceptRate, NotesFile: filepath.Join(c.DataDir, "away-notes.json"),
		Logger: b.log, Now: c.Now, Metrics: b.reg},
		reach.Deps{Store: b.store, Signals: status, Brokers: b.brokers, OnChange: b.changes.Notify,
			Policy: b.store.AgentPolicy})
	if b.cluster != nil { // else the interfaces stay nil: the broker runs alone
		b.reach.SetCluster(b.cluster, b.cluster)
		b.reach.SetNotes(clusterNotes{b.cluster})
	}
	var err error
	b.sessions, err = session.New(session.Config{Name: c.Name, GrantTTL: c.GrantTTL,
		STUN: c.STUN, TURNIP: c.TURNIP, TURNAllocations: c.RelayMaxSessions * 2, Net: c.Net,
		Logger: b.log, Now: c.Now, Metrics: b.reg},
		session.Deps{Key: b.key.Priv, Host: b.host, Store: b.store, Reach: b.reach, Brokers: b.brokers,
			Relay: b.relay, Audit: b.audit, Refused: b.serve.Refused, Status: status})
	if err != nil {
		return err
	}
	b.techs = reach.NewTechnicians(b.store, b.sessions.MeasureRTT)
	b.brokers.Count(b.reach.Count, b.techs.Count)
	return nil
}
