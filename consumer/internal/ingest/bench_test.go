package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/platform/telemetry"
	"github.com/commentflow/commentflow/schemas"
)

// BenchmarkConsumerVsRawInsert compares, in one run against the same
// database, the consumer end to end (fetch + decode + insert + commit of
// benchDocs pre-produced records, from the first record polled to the last
// offset committed) with raw unordered InsertMany of the same documents,
// pre-built, in batches of the same size, into a fresh collection with the
// same indexes. It reports both rates and their ratio (target >= 0.9).
func BenchmarkConsumerVsRawInsert(b *testing.B) {
	const (
		benchDocs = 6000
		batchSize = 500
	)
	ctx := context.Background()
	e := newBench(ctx, b, infra.Options{}, benchDocs)
	st := e.st
	docs := make([]store.Document, 0, benchDocs)
	recs := make([]*kgo.Record, 0, benchDocs)
	now := time.Now().UTC()
	for i, c := range e.comments {
		recs = append(recs, &kgo.Record{Key: []byte(c.PostID), Value: e.values[i]})
		docs = append(docs, store.Document{ID: c.ID, PostID: c.PostID, Name: c.Name, Text: c.Text, Address: c.Address,
			CreatedAt: c.CreatedAt, IngestedAt: now, Kafka: store.Position{Partition: int32(i % 3), Offset: int64(i)}, SchemaID: e.id})
	}
	e.produce(ctx, b, recs...)

	open := func(coll string) *store.Store {
		s, err := store.Open(store.Config{URI: st.MongoURI(), Database: "bench", Collection: coll, WriteConcern: "majority"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(context.Background()) })
		if err := s.EnsureIndexes(ctx); err != nil {
			b.Fatal(err)
		}
		return s
	}

	// Raw: the same documents, the same batches, nothing else.
	rawRun := func(i int) timed {
		raw := open(fmt.Sprintf("raw%d", i))
		stop := watch(b)
		for j := 0; j < len(docs); j += batchSize {
			if _, err := raw.Collection().InsertMany(ctx, docs[j:min(j+batchSize, len(docs))], options.InsertMany().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
		return stop()
	}
	// The consumer, a fresh group reading the topic from the start.
	consumerRun := func(i int) timed {
		group := fmt.Sprintf("bench-%d", i)
		c := e.consumer(b, schemas.Topic, group, batchSize, 16<<20, open(fmt.Sprintf("consumer%d", i)), nil)
		return timeConsumer(ctx, b, st, c, group, benchDocs)
	}

	compareRuns(b, benchDocs, rawRun, consumerRun)
}

// bench is what the consumer benchmarks share: the infrastructure, the
// comment schema registered on it, a dead-letter writer, and n comments as
// the producer makes them (200 posts, created a millisecond apart), with
// their encoded values.
type bench struct {
	st       *infra.Stack
	rcl      *sr.Client
	id       int
	w        *dlq.Writer
	comments []schemas.Comment
	values   [][]byte
}

func newBench(ctx context.Context, b *testing.B, opts infra.Options, n int) *bench {
	b.Helper()
	e := &bench{st: infra.StartT(b, opts)}
	e.rcl, e.id = kafkatest.Register(ctx, b, e.st.RegistryURL())
	enc := schemas.NewEncoder(e.id)
	posts := make([]string, 200)
	for i := range posts {
		posts[i] = uuid.NewString()
	}
	now := time.Now().UTC()
	for i := range n {
		c := schemas.Comment{
			ID: uuid.Must(uuid.NewV7()).String(), PostID: posts[i%len(posts)],
			Name: fmt.Sprintf("Author %d", i%311), Text: "What a great post, thanks for sharing it with all of us here!",
			Address: fmt.Sprintf("%d Main Street, Springfield, IL 62704", i), CreatedAt: time.UnixMilli(now.UnixMilli() + int64(i)).UTC(),
		}
		v, err := enc.Encode(&c)
		if err != nil {
			b.Fatal(err)
		}
		e.comments, e.values = append(e.comments, c), append(e.values, v)
	}
	w, err := dlq.NewWriter(ctx, []kgo.Opt{kgo.SeedBrokers(e.st.KafkaAddr())}, schemas.DLQTopic, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Close)
	e.w = w
	return e
}

// produce produces recs (to the comments topic unless they name another).
func (e *bench) produce(ctx context.Context, b *testing.B, recs ...*kgo.Record) {
	b.Helper()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(e.st.KafkaAddr()), kgo.DefaultProduceTopic(schemas.Topic))
	if err != nil {
		b.Fatal(err)
	}
	defer kcl.Close()
	if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}

// consumer is a Consumer of a fresh group reading topic from the start, as
// a service configures it but for the batch size and fetch limit, storing
// into s and traced by tel (nil: not traced).
func (e *bench) consumer(b *testing.B, topic, group string, batchSize int, fetchMax int32, s Store, tel *telemetry.Telemetry) *Consumer {
	b.Helper()
	c, err := New(Config{
		Topic: topic, Group: group,
		BatchSize: batchSize, BatchTimeout: 250 * time.Millisecond, MaxPollRecords: 1000, FetchMaxBytes: fetchMax,
		ShutdownTimeout: 10 * time.Second,
	}, Deps{
		KafkaOpts: []kgo.Opt{kgo.SeedBrokers(e.st.KafkaAddr())}, Decoder: schemas.NewDecoder(e.rcl),
		Store: s, DLQ: e.w, Ready: ops.NewReadiness(),
		Registerer: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler), Telemetry: tel,
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// timed is one pass over a benchmark's records: its wall-clock time and
// the CPU time this process (consumer, client, kfake) used meanwhile.
type timed struct{ wall, cpu time.Duration }

// watch starts timing a pass; stop returns its time so far.
func watch(b *testing.B) (stop func() timed) {
	start, startCPU := time.Now(), cpuTime(b)
	return func() timed { return timed{time.Since(start), cpuTime(b) - startCPU} }
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timeConsumer runs c until the group has committed want records of its
// topic and returns how long that took from the first record polled; it
// fails unless exactly want records were stored.
func timeConsumer(ctx context.Context, b *testing.B, st *infra.Stack, c *Consumer, group string, want int64) timed {
	b.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	for c.consumed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop := watch(b)
	for committed(st, c.cfg.Topic, group) < want {
		time.Sleep(time.Millisecond)
	}
	took := stop()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := c.stored.Load(); got != want {
		b.Fatalf("stored %d, want %d", got, want)
	}
	return took
}

// alternate times b.N rounds of each path (a function doing one pass),
// rotating which goes first so that drift in the machine's load does not
// favor one, and returns each path's sum over the rounds.
func alternate(b *testing.B, paths ...func(i int) timed) []timed {
	b.Helper()
	sums := make([]timed, len(paths))
	b.ResetTimer()
	for i := range b.N {
		for k := range paths {
			p := (i + k) % len(paths)
			t := paths[p](i)
			sums[p].wall += t.wall
			sums[p].cpu += t.cpu
		}
	}
	b.StopTimer()
	return sums
}

// compareRuns times b.N rounds of the consumer and of the raw baseline,
// alternating which goes first, and reports both rates and their ratio.
func compareRuns(b *testing.B, docs int, rawRun, consumerRun func(i int) timed) {
	b.Helper()
	t := alternate(b, rawRun, consumerRun)
	reportVsRaw(b, docs, t[0], t[1])
}

// reportVsRaw reports the consumer's and the raw baseline's rates over
// b.N passes of docs records, and their ratio.
func reportVsRaw(b *testing.B, docs int, raw, consumer timed) {
	b.Helper()
	b.ReportMetric(rate(b, docs, consumer), "consumer_docs/s")
	b.ReportMetric(rate(b, docs, raw), "raw_docs/s")
	b.ReportMetric(rate(b, docs, consumer)/rate(b, docs, raw), "ratio")
}

// rate is docs per second over b.N passes of docs records.
func rate(b *testing.B, docs int, t timed) float64 {
	return float64(docs*b.N) / t.wall.Seconds()
}

// committed is the group's committed offsets of topic summed over the
// partitions.
func committed(st *infra.Stack, topic, group string) int64 {
	gi := st.Kafka.GroupInfo(group)
	if gi == nil {
		return 0
	}
	var n int64
	for _, c := range gi.Commits[topic] {
		n += c.Offset
	}
	return n
}
