// Package kafkatest reads Kafka topics back for tests: how many records a
// topic holds, its records from the start, and (ReadAll) the comments on
// it, decoded. It needs only a client's options (the seed brokers, TLS,
// SASL), so it serves the in-process infrastructure (devstack/infra) and
// secured clusters alike.
package kafkatest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EndOffsets are the end offsets (high watermarks) of topic's partitions
// and their sum: how many records the topic holds. The client is built
// from opts.
func EndOffsets(ctx context.Context, t testing.TB, topic string, opts ...kgo.Opt) (map[int32]int64, int64) {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
		sum += o.Offset
	})
	return out, sum
}

// Read reads topic from its start with a client built from opts, handing
// every record to each in the order fetched (each partition's records in
// offset order, the partitions interleaved), until done says it has read
// enough. done is asked before every fetch; its text says how far the
// reading got, for the failure of t when ctx ends first. A fetch error
// fails t too.
func Read(ctx context.Context, t testing.TB, topic string, done func() (bool, string), each func(*kgo.Record), opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(slices.Concat(opts, []kgo.Opt{kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())})...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		ok, state := done()
		if ok {
			return
		}
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %s: %v", topic, state, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(each)
	}
}

// ReadN reads the first n records of topic (see Read); it may return a few
// more, fetched with the nth.
func ReadN(ctx context.Context, t testing.TB, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	Read(ctx, t, topic,
		func() (bool, string) { return len(out) >= n, fmt.Sprintf("got %d of %d records", len(out), n) },
		func(r *kgo.Record) { out = append(out, r) }, opts...)
	return out
}
