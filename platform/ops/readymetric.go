package ops

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector is the gauge commentflow_<service>_ready: 1 when every check
// passes (what /readyz answers 200 for), else 0, evaluated on each scrape.
// Dashboards and the "not ready" alert read it; /readyz stays the place to
// see which check fails.
func (r *Readiness) Collector(service string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "commentflow", Subsystem: service, Name: "ready",
		Help: "1 when every readiness check passes (/readyz answers 200), else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, ok := r.Check(ctx); ok {
			return 1
		}
		return 0
	})
}
