package releases

import "github.com/prometheus/client_golang/prometheus"

// Flows of blob bytes, the one label of readymesh_release_blob_bytes_total:
// a fixed set, nothing a caller sends.
const (
	flowToAgent      = "to_agent"        // served to agents
	flowToBroker     = "to_broker"       // served to other brokers
	flowFromTech     = "from_technician" // uploaded by admins
	flowFromBroker   = "from_broker"     // pulled from other brokers
	metricBlobBytes  = "readymesh_release_blob_bytes_total"
	metricDownloads  = "readymesh_release_downloads"
	metricDownWaited = "readymesh_release_downloads_waiting"
)

type metrics struct {
	bytes   *prometheus.CounterVec
	active  prometheus.Gauge
	waiting prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricBlobBytes,
			Help: "Release blob bytes moved, by flow: to agents, to brokers, from technicians, from brokers."}, []string{"flow"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: metricDownloads,
			Help: "Release blob downloads holding one of this broker's slots now; those waiting on a pull from another broker hold none."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: metricDownWaited,
			Help: "Release blob downloads waiting for their turn."}),
	}
	for _, f := range []string{flowToAgent, flowToBroker, flowFromTech, flowFromBroker} {
		m.bytes.WithLabelValues(f)
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.active, m.waiting)
	}
	return m
}

func (m metrics) moved(flow string, n int) {
	if n > 0 {
		m.bytes.WithLabelValues(flow).Add(float64(n))
	}
}
