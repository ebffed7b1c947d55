package kafkatest

// This file reads back what the producer wrote: every record of a topic up
// to its current end, decoded with the schemas Decoder against the
// registry.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/schemas"
)

// Record is one record of the topic, decoded.
type Record struct {
	Key       string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Codec     kgo.CompressionCodecType // the batch's compression
	SchemaID  int
	Comment   schemas.Comment
}

// Count is how many records the topic holds (the sum of its partitions'
// end offsets).
func Count(t testing.TB, brokers, topic string) int64 {
	t.Helper()
	return CountWith(t, topic, kgo.SeedBrokers(brokers))
}

// CountWith is Count with a client built from opts (brokers, TLS, SASL).
func CountWith(t testing.TB, topic string, opts ...kgo.Opt) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, n := EndOffsets(ctx, t, topic, opts...)
	return n
}

// ReadAll returns every record of topic up to its end offsets as of the
// call, in the order fetched: each partition's records in offset order,
// the partitions interleaved (sort by Partition, Offset if a test needs a
// total order). It fails the test if one does not decode as a valid
// Comment.
func ReadAll(t testing.TB, brokers, registryURL, topic string) []Record {
	t.Helper()
	return ReadAllWith(t, registryURL, topic, kgo.SeedBrokers(brokers))
}

// ReadAllWith is ReadAll with a client built from opts (brokers, TLS,
// SASL).
func ReadAllWith(t testing.TB, registryURL, topic string, opts ...kgo.Opt) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := CountWith(t, topic, opts...)
	srcl, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(srcl)
	var out []Record
	done := func() (bool, string) {
		return int64(len(out)) >= want, fmt.Sprintf("got %d of %d records", len(out), want)
	}
	Read(ctx, t, topic, done, func(r *kgo.Record) {
		c, id, err := dec.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("record %s/%d@%d does not decode: %v", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, Record{
			Key: string(r.Key), Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
			//nolint:gosec // G115: CompressionType is the 3 low bits of the attributes (0-7), which fit an int8.
			Codec: kgo.CompressionCodecType(r.Attrs.CompressionType()), SchemaID: id, Comment: c,
		})
	}, opts...)
	return out
}

// Register registers the comment schema on the registry at url, as the
// producer does at startup, and returns a client of that registry and the
// schema's ID.
func Register(ctx context.Context, t testing.TB, url string) (*sr.Client, int) {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	id, err := schemas.NewRegistry(cl).Register(ctx)
	if err != nil {
		t.Fatalf("register the comment schema: %v", err)
	}
	return cl, id
}
