package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// discard is a Store that keeps nothing: every document counts as
// inserted at once. It is the null database of the ceiling benchmark, not
// a stand-in for MongoDB.
type discard struct{}

func (discard) Insert(_ context.Context, docs []store.Document) (store.Result, []store.Document, error) {
	return store.Result{Inserted: len(docs)}, nil, nil
}

func (discard) Ping(context.Context) error { return nil }

// BenchmarkConsumerCeiling measures what the consumer itself can do, with
// no database in the way: the whole path (fetch from kfake, decode through
// the registry-backed decoder, validate, build the documents, hand them to
// a store that keeps nothing, commit the offsets) from the first record
// polled to the last offset committed, against a raw baseline in the same
// run: a plain franz-go client reading the same records from the start of
// the topic and decoding each with hamba/avro, nothing else. It reports
// both rates and their ratio (target >= 0.5).
func BenchmarkConsumerCeiling(b *testing.B) {
	const (
		benchDocs = 100000
		batchSize = 500
		fetchMax  = 16 << 20
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
	now := time.Now().UTC()
	recs := make([]*kgo.Record, 0, benchDocs)
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
	}
	if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	w, err := dlq.NewWriter(ctx, []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, schemas.DLQTopic, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()

	// Raw: fetch the records with the same fetch limits and decode each.
	schema := schemas.CommentSchema()
	rawRun := func(int) time.Duration {
		cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()), kgo.ConsumeTopics(schemas.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxBytes(fetchMax), kgo.FetchMaxPartitionBytes(1<<20), kgo.MaxConcurrentFetches(maxConcurrentFetches))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		var start time.Time
		n := 0
		for n < benchDocs {
			fs := cl.PollRecords(ctx, 1000)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			if start.IsZero() {
				start = time.Now()
			}
			for it := fs.RecordIter(); !it.Done(); {
				r := it.Next()
				var c schemas.Comment
				if err := avro.Unmarshal(schema, r.Value[5:], &c); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		return time.Since(start)
	}
	// The consumer, a fresh group reading the topic from the start.
	consumerRun := func(i int) time.Duration {
		group := fmt.Sprintf("ceiling-%d", i)
		c, err := New(Config{
			Topic: schemas.Topic, Group: group,
			BatchSize: batchSize, BatchTimeout: 250 * time.Millisecond, MaxPollRecords: 1000, FetchMaxBytes: fetchMax,
			ShutdownTimeout: 10 * time.Second,
		}, Deps{
			KafkaOpts: []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, Decoder: schemas.NewDecoder(rcl),
			Store: discard{}, DLQ: w, Ready: ops.NewReadiness(),
			Registerer: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		return timeConsumer(ctx, b, st, c, group, benchDocs)
	}

	compareRuns(b, benchDocs, rawRun, consumerRun)
}
