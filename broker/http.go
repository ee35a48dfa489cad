package broker

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/readymesh/readymesh/broker/console"
	"github.com/readymesh/readymesh/broker/internal/conncap"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// setHTTPDefaults fills the HTTP server limits' zero values (see Config).
func (c *Config) setHTTPDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HTTPReadHeaderTimeout, 5*time.Second)
	def(&c.HTTPReadTimeout, 20*time.Second)
	def(&c.HTTPWriteTimeout, 30*time.Second)
	def(&c.HTTPIdleTimeout, 60*time.Second)
	if c.HTTPMaxHeaderBytes <= 0 {
		c.HTTPMaxHeaderBytes = 32 << 10
	}
	if c.HTTPMaxConns <= 0 {
		c.HTTPMaxConns = 4096
	}
	if c.HTTPMaxConnsPerIP <= 0 {
		c.HTTPMaxConnsPerIP = 256
	}
}

// httpServer returns the server for health, metrics and the web console,
// and the listener it serves: b.httpLn bounded by the connection caps.
//
// The server sets no WriteTimeout: it would cut the console's event
// stream, which lives for hours. Each request gets a write deadline of
// its own instead (console.Bounded), which the stream replaces with one
// per event.
func (b *Broker) httpServer() (*http.Server, net.Listener) {
	c := &b.cfg
	srv := &http.Server{Handler: console.Bounded(b.httpHandler(), c.HTTPWriteTimeout),
		ReadHeaderTimeout: c.HTTPReadHeaderTimeout, ReadTimeout: c.HTTPReadTimeout,
		IdleTimeout: c.HTTPIdleTimeout, MaxHeaderBytes: c.HTTPMaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelWarn)}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_http_conns_refused_total",
		Help: "HTTP connections closed at accept, by the bound they were over (total or per_addr)."}, []string{"reason"})
	rl := &refusalLog{log: b.log, now: c.Now}
	ln := conncap.Wrap(b.httpLn, conncap.Config{Total: c.HTTPMaxConns, PerAddr: c.HTTPMaxConnsPerIP,
		OnRefuse: func(reason string, remote net.Addr) {
			refused.WithLabelValues(reason).Inc()
			rl.note(reason, remote)
		}})
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "readymesh_http_conns_open",
		Help: "HTTP connections open now."}, func() float64 { n, _ := ln.Open(); return float64(n) })
	b.reg.MustRegister(refused, open)
	return srv, ln
}

// refusalLog logs the HTTP connections refused at accept at most once
// every refusalLogEvery, with how many there were since the last line: a
// flood of connections must not become a flood of log lines.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	last   time.Time // mu guards all following fields
	missed int       // refusals since the last line
}

const refusalLogEvery = 10 * time.Second

func (l *refusalLog) note(reason string, remote net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.missed++
	now := l.now()
	if now.Sub(l.last) < refusalLogEvery {
		return
	}
	l.log.Warn("HTTP connections refused at accept: over the connection bounds (--http-max-conns, --http-max-conns-per-ip)",
		"refused", l.missed, "reason", reason, "remote", remote.String())
	l.last, l.missed = now, 0
}

// httpHandler serves health, metrics and the web console.
func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", b.healthz)
	mux.HandleFunc("GET /api/v1/broker", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.Info())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.reg, promhttp.HandlerOpts{}))
	return b.console.Handler(mux)
}

// healthz serves GET /healthz: "ok" and the broker's version to anyone,
// for load balancers and uptime checks, and nothing about the fleet. A
// request carrying the console sign-in of an admin also gets the stored
// machines and those online here, which an admin sees anyway; another
// technician's sign-in adds nothing, as a fleet-wide count would tell it
// about clients outside its scope (its own are on the console's pages).
func (b *Broker) healthz(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"status": "ok", "version": buildinfo.Version, "protocol": wire.Protocol}
	if b.console.Admin(r) {
		out["machines"], out["online"] = b.store.Count(), b.reach.Count()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// httpAddr is ln's address, or nil when HTTP is off (ln is nil).
func httpAddr(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}
