package produce

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commentflow/commentflow/platform/ops"
)

// Metric names, on the service's own registry.
const (
	MetricProduced = "commentflow_producer_events_produced_total"
	MetricErrors   = "commentflow_producer_produce_errors_total"
	MetricLatency  = "commentflow_producer_produce_latency_seconds"
)

// Metrics are the producer's own Prometheus metrics: what the client's
// (kafkaconn.Metrics: connections, bytes, buffered records) cannot know.
// Register them before startup so that /metrics shows them from the first
// scrape.
type Metrics struct {
	produced prometheus.Counter
	errors   prometheus.Counter
	latency  prometheus.Histogram
}

// NewMetrics are the metrics of a producer.
func NewMetrics() *Metrics {
	return &Metrics{
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricProduced,
			Help: "Comment events acknowledged by the brokers (acks=all).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricErrors,
			Help: "Comment events that failed after retries or the delivery timeout.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricLatency,
			Help:    "Time from handing an event to the Kafka client to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. 16s
		}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	if err := ops.Register(r, m.produced, m.errors, m.latency); err != nil {
		return fmt.Errorf("register producer metrics: %w", err)
	}
	return nil
}
