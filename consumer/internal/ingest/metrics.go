package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// metrics are the consumer's Prometheus series, all prefixed
// commentflow_consumer_.
type metrics struct {
	consumed     prometheus.Counter
	stored       prometheus.Counter
	duplicates   prometheus.Counter
	deadLettered *prometheus.CounterVec // {class}
	withoutValue prometheus.Counter
	batchSize    prometheus.Histogram
	writeLatency prometheus.Histogram
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	retries      *prometheus.CounterVec // {dependency}
	lag          *prometheus.GaugeVec   // {partition}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "commentflow", "consumer" // ops.Prefix("consumer")
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: ns, Subsystem: sub, Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	m := &metrics{
		consumed:   counter("records_consumed_total", "Records polled from the comments topic, including redeliveries and poison."),
		stored:     counter("documents_stored_total", "Comments newly inserted into MongoDB."),
		duplicates: counter("duplicates_skipped_total", "Comments already stored (duplicate _id on redelivery), counted as success."),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts(opts("dead_lettered_total",
			"Poison records written to the dead-letter topic, by error class.")), []string{"class"}),
		withoutValue: counter("dead_letters_without_value_total",
			"Poison records the dead-letter topic refused whole (too large, invalid, not authorized), dead-lettered as an envelope without their value."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "batch_size", Help: "Records per processed batch (stored plus dead-lettered).",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}}),
		writeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "write_latency_seconds", Help: "Duration of one InsertMany attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		commits: counter("commits_total", "Successful offset commits."),
		commitErrors: counter("commit_errors_total",
			"Failed offset commits (the records are stored; they may be redelivered and skipped as duplicates)."),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("retries_total",
			"Failed attempts retried with backoff, by dependency (mongodb, kafka, registry).")), []string{"dependency"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("lag",
			"Records not yet committed by the group (log end offset - committed offset) of the partitions this member owns, refreshed every few seconds.")),
			[]string{"partition"}),
	}
	if err := ops.Register(reg, m.consumed, m.stored, m.duplicates, m.deadLettered, m.withoutValue, m.batchSize,
		m.writeLatency, m.commits, m.commitErrors, m.retries, m.lag); err != nil {
		return nil, err
	}
	// Zero series exist from the start, so rate() and alerts see the first
	// rise (a series that appears at 1 has none).
	for _, dep := range []string{depMongo, depKafka, depRegistry} {
		m.retries.WithLabelValues(dep)
	}
	for _, class := range []string{string(schemas.ClassBadFraming), string(schemas.ClassUnknownSchema),
		string(schemas.ClassAvroDecode), string(schemas.ClassInvalid), store.ErrorClass} {
		m.deadLettered.WithLabelValues(class)
	}
	return m, nil
}

func (m *metrics) setLag(partition int32, lag int64) {
	m.lag.WithLabelValues(strconv.FormatInt(int64(partition), 10)).Set(float64(max(lag, 0)))
}

func (m *metrics) dropLag(partition int32) {
	m.lag.DeleteLabelValues(strconv.FormatInt(int64(partition), 10))
}
