package produce_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/poll"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

// env is a producer on a fresh stack with the schema registered.
type env struct {
	st      *infra.Stack
	cl      *kgo.Client
	enc     *schemas.Encoder
	reg     *prometheus.Registry
	metrics *produce.Metrics
}

func setup(t testing.TB, cfg produce.Config) *env {
	t.Helper()
	st := infra.StartT(t, infra.Options{})
	return setupOn(t, st, cfg)
}

func setupOn(t testing.TB, st *infra.Stack, cfg produce.Config, extra ...kgo.Opt) *env {
	t.Helper()
	if cfg.Topic == "" {
		cfg.Topic = schemas.Topic
	}
	if cfg.Compression == "" {
		cfg.Compression = "zstd"
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	opts, err := produce.ClientOpts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The production options, then a faster metadata refresh, so that the
	// fault tests recover from each retriable error in 100ms, not 1s.
	opts = append(append([]kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, opts...), kgo.MetadataMinAge(100*time.Millisecond))
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, id := kafkatest.Register(ctx, t, st.RegistryURL())
	reg := prometheus.NewRegistry()
	m := produce.NewMetrics()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	return &env{st: st, cl: cl, enc: schemas.NewEncoder(id), reg: reg, metrics: m}
}

// recorder is a comment source that remembers the production order.
type recorder struct {
	g   *generate.Generator
	ids []string
}

func newRecorder(t testing.TB, seed uint64, posts int) *recorder {
	g, err := generate.New(generate.Options{Seed: seed, Posts: posts})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{g: g}
}

func (r *recorder) next(c *schemas.Comment) {
	r.g.Next(c)
	r.ids = append(r.ids, c.ID)
}

// checkExactlyOnceInOrder asserts that the topic holds exactly the produced
// comments, each once, keyed by post_id, a post's comments on one partition
// in production order.
func checkExactlyOnceInOrder(t *testing.T, recs []kafkatest.Record, produced []string) {
	t.Helper()
	if len(recs) != len(produced) {
		t.Fatalf("topic holds %d records, produced %d", len(recs), len(produced))
	}
	rank := make(map[string]int, len(produced))
	for i, id := range produced {
		rank[id] = i
	}
	seen := map[string]bool{}
	postPartition := map[string]int32{}
	lastRank := map[string]int{}
	for _, r := range recs { // partition by partition, in offset order
		c := r.Comment
		if seen[c.ID] {
			t.Fatalf("id %s is on the topic twice", c.ID)
		}
		seen[c.ID] = true
		i, ok := rank[c.ID]
		if !ok {
			t.Fatalf("id %s on the topic was never produced", c.ID)
		}
		if r.Key != c.PostID {
			t.Fatalf("record key %q, want its post_id %q", r.Key, c.PostID)
		}
		if !r.Timestamp.Equal(c.CreatedAt) {
			t.Fatalf("record timestamp %v, want created_at %v", r.Timestamp, c.CreatedAt)
		}
		if p, ok := postPartition[c.PostID]; ok && p != r.Partition {
			t.Fatalf("post %s is on partitions %d and %d", c.PostID, p, r.Partition)
		}
		postPartition[c.PostID] = r.Partition
		if last, ok := lastRank[c.PostID]; ok && i < last {
			t.Fatalf("post %s: comment #%d is after #%d on partition %d", c.PostID, i, last, r.Partition)
		}
		lastRank[c.PostID] = i
	}
}

func TestProduceAllOnTopicExactlyOnceInOrder(t *testing.T) {
	e := setup(t, produce.Config{})
	p := produce.New(e.cl, e.enc, produce.Options{Metrics: e.metrics})
	src := newRecorder(t, 1, 50)
	const n = 3000
	ctx := context.Background()
	sent, err := p.Run(ctx, src.next, 0, n)
	if err != nil || sent != n {
		t.Fatalf("Run = %d, %v; want %d, nil", sent, err, n)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Produced != n || st.Failed != 0 || st.Pending() != 0 {
		t.Fatalf("stats %+v, want %d produced", st, n)
	}
	recs := kafkatest.ReadAll(t, e.st.KafkaAddr(), e.st.RegistryURL(), schemas.Topic)
	checkExactlyOnceInOrder(t, recs, src.ids)

	partitions := map[int32]bool{}
	for _, r := range recs {
		partitions[r.Partition] = true
		if r.SchemaID != e.enc.SchemaID() {
			t.Fatalf("record framed with schema %d, want %d", r.SchemaID, e.enc.SchemaID())
		}
		if r.Codec != kgo.CodecZstd {
			t.Fatalf("batch codec %d, want zstd", r.Codec)
		}
	}
	if len(partitions) != schemas.Partitions {
		t.Errorf("records on %d partitions, want all %d", len(partitions), schemas.Partitions)
	}

	if got := metricValue(t, e.reg, produce.MetricProduced); got != n {
		t.Errorf("%s = %v, want %d", produce.MetricProduced, got, n)
	}
	if got := metricValue(t, e.reg, produce.MetricErrors); got != 0 {
		t.Errorf("%s = %v, want 0", produce.MetricErrors, got)
	}
	if got := histogramCount(t, e.reg, produce.MetricLatency); got != n {
		t.Errorf("%s has %d observations, want %d", produce.MetricLatency, got, n)
	}
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	m := gathered(t, g, name)
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s is neither a counter nor a gauge", name)
	return 0
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	return gathered(t, g, name).GetHistogram().GetSampleCount()
}

// gathered is the first series of the metric name that g gathers.
func gathered(t *testing.T, g prometheus.Gatherer, name string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}

func TestEveryCompressionRoundTrips(t *testing.T) {
	topics := map[string]int32{}
	for _, c := range produce.Compressions {
		topics["t-"+c] = 1
	}
	st := infra.StartT(t, infra.Options{Topics: topics})
	want := map[string]kgo.CompressionCodecType{
		"none": kgo.CodecNone, "gzip": kgo.CodecGzip, "snappy": kgo.CodecSnappy, "lz4": kgo.CodecLz4, "zstd": kgo.CodecZstd,
	}
	for _, codec := range produce.Compressions {
		t.Run(codec, func(t *testing.T) {
			e := setupOn(t, st, produce.Config{Topic: "t-" + codec, Compression: codec})
			p := produce.New(e.cl, e.enc, produce.Options{})
			src := newRecorder(t, 2, 5)
			ctx := context.Background()
			runAndFlush(ctx, t, p, src, 200)
			recs := kafkatest.ReadAll(t, st.KafkaAddr(), st.RegistryURL(), "t-"+codec)
			checkExactlyOnceInOrder(t, recs, src.ids)
			for _, r := range recs {
				if r.Codec != want[codec] {
					t.Fatalf("batch codec %d, want %d (%s)", r.Codec, want[codec], codec)
				}
			}
		})
	}
}

func TestClientOptsRejectBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  produce.Config
		want string
	}{
		{"unknown compression", produce.Config{Topic: "x", Compression: "brotli", DeliveryTimeout: time.Second}, `unknown compression "brotli"`},
		{"no topic", produce.Config{Compression: "none", DeliveryTimeout: time.Second}, "no topic"},
		{"no delivery timeout", produce.Config{Topic: "x", Compression: "none"}, "delivery timeout"},
		{"sub-second delivery timeout", produce.Config{Topic: "x", Compression: "none", DeliveryTimeout: 999 * time.Millisecond}, "at least 1s"},
		{"long linger", produce.Config{Topic: "x", Compression: "none", DeliveryTimeout: time.Second, Linger: 2 * time.Minute}, "linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := produce.ClientOpts(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ClientOpts(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
	for _, c := range produce.Compressions {
		if _, err := produce.Codec(strings.ToUpper(c)); err != nil {
			t.Errorf("Codec(%q): %v", strings.ToUpper(c), err)
		}
	}
}

// A broker fault on produce is retried by the idempotent producer: every
// comment lands exactly once and in order. REQUEST_TIMED_OUT is the hard
// case: kfake appends the batch and then answers with the error, so the
// retry is a duplicate that only the idempotent sequence numbers remove.
func TestBrokerFaultsAreRetriedWithoutLossOrDuplicates(t *testing.T) {
	cases := []struct {
		name  string
		err   *kerr.Error
		count int
	}{
		{"not leader", kerr.NotLeaderForPartition, 3},
		{"request timed out after append", kerr.RequestTimedOut, 3},
		{"not enough replicas", kerr.NotEnoughReplicas, 2},
	}
	topics := map[string]int32{}
	for i := range cases {
		topics[fmt.Sprintf("faults-%d", i)] = schemas.Partitions
	}
	st := infra.StartT(t, infra.Options{Topics: topics})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("faults-%d", i)
			e := setupOn(t, st, produce.Config{Topic: topic})
			fault := st.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: tc.err, Count: tc.count})
			defer fault.Remove()
			p := produce.New(e.cl, e.enc, produce.Options{Metrics: e.metrics})
			src := newRecorder(t, uint64(10+i), 20)
			ctx := context.Background()
			const n = 1000
			runAndFlush(ctx, t, p, src, n)
			if hits := fault.Hits(); hits != tc.count {
				t.Fatalf("the fault answered %d produce requests, want %d", hits, tc.count)
			}
			if st := p.Stats(); st.Produced != n || st.Failed != 0 {
				t.Fatalf("stats %+v, want all %d produced, none failed", st, n)
			}
			checkExactlyOnceInOrder(t, kafkatest.ReadAll(t, st.KafkaAddr(), st.RegistryURL(), topic), src.ids)
			if got := metricValue(t, e.reg, produce.MetricErrors); got != 0 {
				t.Errorf("%s = %v, want 0: retried faults are not errors", produce.MetricErrors, got)
			}
		})
	}
}

// A fault that does not heal fails the records after the retries or the
// delivery timeout: they are counted, logged and reported to readiness,
// and producing recovers once the fault is gone.
func TestFailuresAreCountedAndRecovered(t *testing.T) {
	e := setup(t, produce.Config{DeliveryTimeout: time.Second})
	var mu sync.Mutex
	var health []error
	p := produce.New(e.cl, e.enc, produce.Options{Metrics: e.metrics, OnHealth: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		health = append(health, err)
	}})
	fault := e.st.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: schemas.Topic, Err: kerr.NotEnoughReplicas, Count: -1})
	ctx := context.Background()
	src := newRecorder(t, 4, 10)
	runAndFlush(ctx, t, p, src, 50)
	if st := p.Stats(); st.Failed != 50 || st.Produced != 0 {
		t.Fatalf("stats %+v, want 50 failed", st)
	}
	if got := metricValue(t, e.reg, produce.MetricErrors); got != 50 {
		t.Fatalf("%s = %v, want 50", produce.MetricErrors, got)
	}
	if n := kafkatest.Count(t, e.st.KafkaAddr(), schemas.Topic); n != 0 {
		t.Fatalf("topic holds %d records, want none", n)
	}

	fault.Remove()
	src.ids = nil
	runAndFlush(ctx, t, p, src, 20)
	if st := p.Stats(); st.Produced != 20 {
		t.Fatalf("after the fault: stats %+v, want 20 produced", st)
	}
	checkExactlyOnceInOrder(t, kafkatest.ReadAll(t, e.st.KafkaAddr(), e.st.RegistryURL(), schemas.Topic), src.ids)
	mu.Lock()
	defer mu.Unlock()
	if len(health) != 2 || health[0] == nil || health[1] != nil {
		t.Fatalf("health reports %v, want [an error, nil]", health)
	}
}

// Canceling Run stops generating; Flush then delivers everything handed
// over, so what Run reports sent is exactly what is on the topic.
func TestCancelStopsGeneratingAndFlushDeliversAll(t *testing.T) {
	e := setup(t, produce.Config{})
	p := produce.New(e.cl, e.enc, produce.Options{})
	src := newRecorder(t, 5, 30)
	ctx, cancel := context.WithCancel(context.Background())
	var sent int64
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent, runErr = p.Run(ctx, src.next, 0, 0)
	}()
	waitFor(t, "500 acknowledgements", func() bool { return p.Stats().Produced >= 500 })
	cancel()
	<-done
	if runErr != nil {
		t.Fatal(runErr)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Produced != sent || st.Failed != 0 {
		t.Fatalf("stats %+v, want all %d sent produced", st, sent)
	}
	checkExactlyOnceInOrder(t, kafkatest.ReadAll(t, e.st.KafkaAddr(), e.st.RegistryURL(), schemas.Topic), src.ids)
}

// With a small buffer, producing waits for acknowledgements rather than
// growing, and nothing is lost. A Produce blocked on a full buffer that
// never drains returns on Abort, and the records fail rather than hang.
func TestBackpressureAndAbort(t *testing.T) {
	e := setup(t, produce.Config{MaxBuffered: 4, DeliveryTimeout: time.Second})
	p := produce.New(e.cl, e.enc, produce.Options{})
	src := newRecorder(t, 6, 10)
	ctx := context.Background()
	runAndFlush(ctx, t, p, src, 300)
	checkExactlyOnceInOrder(t, kafkatest.ReadAll(t, e.st.KafkaAddr(), e.st.RegistryURL(), schemas.Topic), src.ids)

	// A broker that never acknowledges: four records fill the buffer and
	// the fifth blocks.
	fault := e.st.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	defer fault.Remove()
	c := src.g.Comment()
	for range 4 {
		if err := p.Produce(&c); err != nil {
			t.Fatal(err)
		}
	}
	returned := make(chan error, 1)
	go func() { returned <- p.Produce(&c) }()
	waitFor(t, "the fifth record to be handed over", func() bool { return p.Stats().Sent == 305 })
	p.Abort()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Produce stayed blocked after Abort")
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Produced != 300 || st.Failed != 5 || st.Pending() != 0 {
		t.Fatalf("stats %+v, want 300 produced and the 5 records of the dead broker failed", st)
	}
	if n := kafkatest.Count(t, e.st.KafkaAddr(), schemas.Topic); n != 300 {
		t.Fatalf("topic holds %d records, want 300", n)
	}
	if _, err := p.Run(ctx, src.next, 0, 10); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Sent != 305 {
		t.Fatalf("an aborted producer handed over %d more records", st.Sent-305)
	}
}

// runAndFlush produces n comments of src with p and waits until they are
// acknowledged, failing t on an error.
func runAndFlush(ctx context.Context, t *testing.T, p *produce.Producer, src *recorder, n int64) {
	t.Helper()
	if _, err := p.Run(ctx, src.next, 0, n); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 30*time.Second, 5*time.Millisecond, func() (bool, string) { return cond(), "" })
}
