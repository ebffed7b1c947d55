package ingest

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/commentflow/commentflow/platform/ops"
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
	st := infra.StartT(b, infra.Options{})
	ctx := context.Background()
	rcl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		b.Fatal(err)
	}
	id, err := schemas.NewRegistry(rcl).Register(ctx)
	if err != nil {
		b.Fatal(err)
	}
	enc := schemas.NewEncoder(id)
	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()), kgo.DefaultProduceTopic(schemas.Topic))
	if err != nil {
		b.Fatal(err)
	}
	defer kcl.Close()

	posts := make([]string, 200)
	for i := range posts {
		posts[i] = uuid.NewString()
	}
	docs := make([]store.Document, 0, benchDocs)
	recs := make([]*kgo.Record, 0, benchDocs)
	now := time.Now().UTC()
	for i := range benchDocs {
		c := schemas.Comment{
			ID: uuid.Must(uuid.NewV7()).String(), PostID: posts[i%len(posts)],
			Name: fmt.Sprintf("Author %d", i%311), Text: "What a great post, thanks for sharing it with all of us here!",
			Address: fmt.Sprintf("%d Main Street, Springfield, IL 62704", i), CreatedAt: time.UnixMilli(now.UnixMilli() + int64(i)).UTC(),
		}
		v, err := enc.Encode(&c)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(c.PostID), Value: v})
		docs = append(docs, store.Document{ID: c.ID, PostID: c.PostID, Name: c.Name, Text: c.Text, Address: c.Address,
			CreatedAt: c.CreatedAt, IngestedAt: now, Kafka: store.Position{Partition: int32(i % 3), Offset: int64(i)}, SchemaID: id})
	}
	if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}

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
	log := slog.New(slog.DiscardHandler)
	w, err := dlq.NewWriter(ctx, []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, schemas.DLQTopic, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()

	// Raw: the same documents, the same batches, nothing else.
	rawRun := func(i int) time.Duration {
		raw := open(fmt.Sprintf("raw%d", i))
		start := time.Now()
		for j := 0; j < len(docs); j += batchSize {
			if _, err := raw.Collection().InsertMany(ctx, docs[j:min(j+batchSize, len(docs))], options.InsertMany().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	// The consumer, a fresh group reading the topic from the start.
	consumerRun := func(i int) time.Duration {
		group := fmt.Sprintf("bench-%d", i)
		c, err := New(Config{
			Topic: schemas.Topic, Group: group,
			BatchSize: batchSize, BatchTimeout: 250 * time.Millisecond, MaxPollRecords: 1000, FetchMaxBytes: 16 << 20,
			ShutdownTimeout: 10 * time.Second,
		}, Deps{
			KafkaOpts: []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, Decoder: schemas.NewDecoder(rcl),
			Store: open(fmt.Sprintf("consumer%d", i)), DLQ: w, Ready: ops.NewReadiness(),
			Registerer: prometheus.NewRegistry(), Log: log,
		})
		if err != nil {
			b.Fatal(err)
		}
		return timeConsumer(ctx, b, st, c, group, benchDocs)
	}

	compareRuns(b, benchDocs, rawRun, consumerRun)
}

// committed is the group's committed offsets summed over the partitions.
// timeConsumer runs c until the group has committed want records and
// returns how long that took from the first record polled; it fails unless
// exactly want records were stored.
func timeConsumer(ctx context.Context, b *testing.B, st *infra.Stack, c *Consumer, group string, want int64) time.Duration {
	b.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	for c.consumed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for committed(st, group) < want {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := c.stored.Load(); got != want {
		b.Fatalf("stored %d, want %d", got, want)
	}
	return took
}

// compareRuns times b.N rounds of the consumer and of the raw baseline,
// alternating which goes first so that drift in the machine's load does not
// favor one, and reports both rates and their ratio.
func compareRuns(b *testing.B, docs int, rawRun, consumerRun func(i int) time.Duration) {
	b.Helper()
	var consumerTime, rawTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			rawTime += rawRun(i)
			consumerTime += consumerRun(i)
		} else {
			consumerTime += consumerRun(i)
			rawTime += rawRun(i)
		}
	}
	b.StopTimer()
	total := float64(docs * b.N)
	consumerRate, rawRate := total/consumerTime.Seconds(), total/rawTime.Seconds()
	b.ReportMetric(consumerRate, "consumer_docs/s")
	b.ReportMetric(rawRate, "raw_docs/s")
	b.ReportMetric(consumerRate/rawRate, "ratio")
}

func committed(st *infra.Stack, group string) int64 {
	gi := st.Kafka.GroupInfo(group)
	if gi == nil {
		return 0
	}
	var n int64
	for _, c := range gi.Commits[schemas.Topic] {
		n += c.Offset
	}
	return n
}
