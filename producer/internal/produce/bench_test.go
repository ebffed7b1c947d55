package produce_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

// BenchmarkProduce measures three paths against kfake, with the production
// client options (zstd, 5ms linger, idempotent, acks=all), b.N events each:
//
//   - raw: franz-go producing pre-encoded values of the same size, one
//     new *kgo.Record per event (the baseline: client, compression and
//     broker);
//   - encode: the producer on pre-generated comments (encode, frame, key,
//     produce, promise, metrics);
//   - generate: the whole producer path, comments generated as it goes.
//
// The machine is shared and noisy, so the three run interleaved in chunks
// (each chunk flushed and timed on its own) and every figure is the sum
// over the chunks: a slow moment hits all three alike, which keeps the
// ratios meaningful. It reports events/s of each path, the ratios
// encode/raw and generate/raw, and the same ratios in CPU time (_cpu);
// ns/op is one event through all three paths. Run it with a fixed count:
//
//	go test -run '^$' -bench Produce -benchtime 300000x ./internal/produce
func BenchmarkProduce(b *testing.B) {
	st := infra.StartT(b, infra.Options{Topics: map[string]int32{
		"raw": schemas.Partitions, "encode": schemas.Partitions, "generate": schemas.Partitions,
	}})
	ctx := context.Background()

	const pool = 10_000
	g, err := generate.New(generate.Options{Seed: 1, Posts: 200})
	if err != nil {
		b.Fatal(err)
	}
	comments := make([]schemas.Comment, pool)
	for i := range comments {
		g.Next(&comments[i])
	}

	// raw
	re := setupOn(b, st, produce.Config{Topic: "raw"})
	keys, vals := make([][]byte, pool), make([][]byte, pool)
	var size int
	for i := range comments {
		v, err := re.enc.Encode(&comments[i])
		if err != nil {
			b.Fatal(err)
		}
		keys[i], vals[i] = []byte(comments[i].PostID), v
		size += len(v)
	}
	var rawFailed atomic.Int64
	rawPromise := func(_ *kgo.Record, err error) {
		if err != nil {
			rawFailed.Add(1)
		}
	}
	rawChunk := func(from, n int) {
		for i := from; i < from+n; i++ {
			re.cl.Produce(ctx, &kgo.Record{Key: keys[i%pool], Value: vals[i%pool]}, rawPromise)
		}
		if err := re.cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// encode
	ee := setupOn(b, st, produce.Config{Topic: "encode"})
	ep := produce.New(ee.cl, ee.enc, produce.Options{Metrics: ee.metrics})
	next := 0
	pregenerated := func(c *schemas.Comment) {
		*c = comments[next%pool]
		next++
	}
	encodeChunk := func(_, n int) {
		if _, err := ep.Run(ctx, pregenerated, 0, int64(n)); err != nil {
			b.Fatal(err)
		}
		if err := ep.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// generate
	ge := setupOn(b, st, produce.Config{Topic: "generate"})
	gp := produce.New(ge.cl, ge.enc, produce.Options{Metrics: ge.metrics})
	gen, err := generate.New(generate.Options{Seed: 2, Posts: 200})
	if err != nil {
		b.Fatal(err)
	}
	generateChunk := func(_, n int) {
		if _, err := gp.Run(ctx, gen.Next, 0, int64(n)); err != nil {
			b.Fatal(err)
		}
		if err := gp.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// Warm up each client (connections, producer id, metadata).
	rawChunk(0, 100)
	encodeChunk(0, 100)
	generateChunk(0, 100)

	const chunk = 20_000
	var rawT, encT, genT, rawCPU, encCPU, genCPU time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		for _, step := range []struct {
			fn        func(int, int)
			wall, cpu *time.Duration
		}{{rawChunk, &rawT, &rawCPU}, {encodeChunk, &encT, &encCPU}, {generateChunk, &genT, &genCPU}} {
			start, startCPU := time.Now(), cpuTime(b)
			step.fn(done, n)
			*step.wall += time.Since(start)
			*step.cpu += cpuTime(b) - startCPU
		}
	}
	b.StopTimer()

	if n := rawFailed.Load(); n > 0 {
		b.Fatalf("%d raw records failed", n)
	}
	for name, p := range map[string]*produce.Producer{"encode": ep, "generate": gp} {
		if s := p.Stats(); s.Failed > 0 || s.Pending() > 0 {
			b.Fatalf("%s: stats %+v", name, s)
		}
	}
	eps := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	b.ReportMetric(float64(size)/pool, "value_bytes")
	b.ReportMetric(eps(rawT), "raw_events/s")
	b.ReportMetric(eps(encT), "encode_events/s")
	b.ReportMetric(eps(genT), "generate_events/s")
	b.ReportMetric(eps(encT)/eps(rawT), "encode/raw")
	b.ReportMetric(eps(genT)/eps(rawT), "generate/raw")
	// The same ratios in process CPU time (this process: producer, client
	// and kfake), which other processes on a busy machine disturb less
	// than the wall clock.
	b.ReportMetric(float64(rawCPU)/float64(encCPU), "encode/raw_cpu")
	b.ReportMetric(float64(rawCPU)/float64(genCPU), "generate/raw_cpu")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
