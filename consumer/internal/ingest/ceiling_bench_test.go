package ingest

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/platform/telemetry"
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
//
// A third path is the same consumer with tracing on as a service has it at
// 100% sampling (kotel's receive and process spans, the batch's
// InsertMany span linking to each record's, the SDK's batch span
// processor) exporting to an exporter that drops the spans, on a copy of
// the records that carry a traceparent header as a tracing producer's do.
// It reports traced/untraced in docs/s and in CPU time (_cpu), and the
// spans exported per record: 2.002 (receive, process, and an InsertMany
// per 500) unless the batch processor dropped some, its queue full, as it
// does in a service.
// The three paths run interleaved, so that a slow moment hits all alike:
//
//	go test -run '^$' -bench Ceiling -benchtime 5x ./internal/ingest
func BenchmarkConsumerCeiling(b *testing.B) {
	const (
		benchDocs   = 100000
		batchSize   = 500
		fetchMax    = 16 << 20
		tracedTopic = "traced"
	)
	topics := infra.DefaultTopics()
	topics[tracedTopic] = schemas.Partitions
	ctx := context.Background()
	e := newBench(ctx, b, infra.Options{Topics: topics}, benchDocs)
	st := e.st
	recs := make([]*kgo.Record, 0, 2*benchDocs)
	for i, c := range e.comments {
		recs = append(recs, &kgo.Record{Key: []byte(c.PostID), Value: e.values[i]},
			&kgo.Record{Topic: tracedTopic, Key: []byte(c.PostID), Value: e.values[i], Headers: []kgo.RecordHeader{{Key: "traceparent", Value: traceparent()}}})
	}
	e.produce(ctx, b, recs...)

	// Raw: fetch the records with the same fetch limits and decode each.
	schema := schemas.CommentSchema()
	rawRun := func(int) timed {
		cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()), kgo.ConsumeTopics(schemas.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxBytes(fetchMax), kgo.FetchMaxPartitionBytes(1<<20), kgo.MaxConcurrentFetches(maxConcurrentFetches))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		var stop func() timed
		n := 0
		for n < benchDocs {
			fs := cl.PollRecords(ctx, 1000)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			if stop == nil {
				stop = watch(b)
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
		return stop()
	}
	// The consumer, a fresh group reading its topic from the start.
	var spans atomic.Int64
	tel := telemetry.New(countSpans{&spans})
	defer func() { _ = tel.Shutdown(ctx) }()
	consumerRun := func(topic string, tel *telemetry.Telemetry) func(int) timed {
		return func(i int) timed {
			group := fmt.Sprintf("ceiling-%s-%d", topic, i)
			c := e.consumer(b, topic, group, batchSize, fetchMax, discard{}, tel)
			took := timeConsumer(ctx, b, st, c, group, benchDocs)
			// Export what is queued before the next path's pass.
			if f, ok := tel.TracerProvider().(interface{ ForceFlush(context.Context) error }); ok {
				if err := f.ForceFlush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			return took
		}
	}

	t := alternate(b, rawRun, consumerRun(schemas.Topic, nil), consumerRun(tracedTopic, tel))
	raw, untraced, traced := t[0], t[1], t[2]
	reportVsRaw(b, benchDocs, raw, untraced)
	b.ReportMetric(rate(b, benchDocs, traced), "traced_docs/s")
	b.ReportMetric(rate(b, benchDocs, traced)/rate(b, benchDocs, untraced), "traced/untraced")
	b.ReportMetric(float64(untraced.cpu)/float64(traced.cpu), "traced/untraced_cpu")
	if err := tel.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(spans.Load())/float64(benchDocs*b.N), "traced_spans/record")
}

// countSpans is a span exporter that counts the spans and drops them.
type countSpans struct{ n *atomic.Int64 }

func (c countSpans) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.n.Add(int64(len(spans)))
	return nil
}

func (countSpans) Shutdown(context.Context) error { return nil }

// traceparent is a W3C traceparent header of a new sampled trace, as a
// tracing producer puts on a record.
func traceparent() []byte {
	var id [24]byte
	_, _ = rand.Read(id[:])
	return fmt.Appendf(nil, "00-%x-%x-01", id[:16], id[16:])
}
