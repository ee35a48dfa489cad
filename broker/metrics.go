package broker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the broker's own Prometheus metrics; libp2p adds its own to
// the same registry.
type metrics struct {
	online   prometheus.Gauge
	checkins *prometheus.CounterVec
	enrolls  *prometheus.CounterVec
	refused  *prometheus.CounterVec
	requests *prometheus.CounterVec

	sessions    *prometheus.CounterVec
	relayActive prometheus.Gauge
	relayBytes  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		online: prometheus.NewGauge(prometheus.GaugeOpts{Name: "readymesh_machines_online",
			Help: "Machines with an open presence stream to this broker."}),
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_checkins_total",
			Help: "Check-ins by result: ok (committed) or the error code."}, []string{"result"}),
		enrolls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_enrolments_total",
			Help: "Enrolments by result."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_refused_total",
			Help: "Refused requests by protocol and error code."}, []string{"request", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_tech_requests_total",
			Help: "Technician requests by operation."}, []string{"op"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_sessions_granted_total",
			Help: "Session grants the agent accepted, by requested transport."}, []string{"transport"}),
		relayActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "readymesh_relay_sessions",
			Help: "Sessions this broker relays now."}),
		relayBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "readymesh_relay_bytes_total",
			Help: "Bytes relayed for sessions (end-to-end encrypted; both directions)."}),
	}
	reg.MustRegister(m.online, m.checkins, m.enrolls, m.refused, m.requests, m.sessions, m.relayActive, m.relayBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
