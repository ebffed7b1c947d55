package schemas_test

import (
	"context"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/commentflow/commentflow/schemas"
)

// The serde's overhead over plain hamba/avro, measured in one run:
//
//	go test -run '^$' -bench . ./schemas
//
// BenchmarkEncode and BenchmarkDecode report ns/op of the raw and framed
// paths; their "ratio" sub-benchmark measures both again back to back and
// reports framed/raw (targets: <= 1.25).

func BenchmarkEncode(b *testing.B) {
	c := sample()
	enc := schemas.NewEncoder(1)
	raw := func() {
		if _, err := avro.Marshal(schemas.CommentSchema(), &c); err != nil {
			b.Fatal(err)
		}
	}
	framed := func() {
		if _, err := enc.Encode(&c); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("raw", loop(raw))
	b.Run("framed", loop(framed))
	b.Run("ratio", func(b *testing.B) { reportRatio(b, raw, framed) })
}

func BenchmarkDecode(b *testing.B) {
	ctx := context.Background()
	_, cl, id := registered(b)
	framedBytes := encodedSample(b, id)
	rawBytes := framedBytes[5:]
	dec := schemas.NewDecoder(cl)
	if _, _, err := dec.Decode(ctx, framedBytes); err != nil { // cache the id
		b.Fatal(err)
	}
	raw := func() {
		var out schemas.Comment
		if err := avro.Unmarshal(schemas.CommentSchema(), rawBytes, &out); err != nil {
			b.Fatal(err)
		}
	}
	framed := func() {
		if _, _, err := dec.Decode(ctx, framedBytes); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("raw", loop(raw))
	b.Run("framed", loop(framed))
	b.Run("ratio", func(b *testing.B) { reportRatio(b, raw, framed) })
}

// reportRatio times baseline and subject alternately, in batches of 64
// calls, in this one benchmark (so both see the same machine state), and
// reports subject/baseline time per op.
func reportRatio(b *testing.B, baseline, subject func()) {
	const batch = 64
	var base, subj time.Duration
	for b.Loop() {
		t0 := time.Now()
		for range batch {
			baseline()
		}
		t1 := time.Now()
		for range batch {
			subject()
		}
		base += t1.Sub(t0)
		subj += time.Since(t1)
	}
	n := float64(b.N * batch)
	b.ReportMetric(float64(base.Nanoseconds())/n, "baseline-ns/op")
	b.ReportMetric(float64(subj.Nanoseconds())/n, "subject-ns/op")
	b.ReportMetric(float64(subj)/float64(base), "x-of-baseline")
}

func loop(op func()) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op()
		}
	}
}
