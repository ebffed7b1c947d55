package produce_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

// BenchmarkProduceTraced measures what tracing costs the producer at 100%
// sampling: the whole producer path (generate) without tracing, and with
// the production tracing (a create span per comment, kotel's publish span
// and traceparent header, the SDK's batch span processor) exporting to an
// exporter that drops the spans, interleaved in chunks as in
// BenchmarkProduce. It reports traced/untraced in events/s and CPU time.
//
//	go test -run '^$' -bench ProduceTraced -benchtime 100000x ./internal/produce
func BenchmarkProduceTraced(b *testing.B) {
	st := infra.StartT(b, infra.Options{Topics: map[string]int32{"plain": schemas.Partitions, "traced": schemas.Partitions}})
	ctx := context.Background()

	pe := setupOn(b, st, produce.Config{Topic: "plain"})
	pp := produce.New(pe.cl, pe.enc, produce.Options{Metrics: pe.metrics})
	pg, err := generate.New(generate.Options{Seed: 1, Posts: 200})
	if err != nil {
		b.Fatal(err)
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer func() { _ = tp.Shutdown(ctx) }()
	kt := kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(propagation.TraceContext{}))
	te := setupOn(b, st, produce.Config{Topic: "traced"}, kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(kt)).Hooks()...))
	tpr := produce.New(te.cl, te.enc, produce.Options{Metrics: te.metrics, Tracer: tp.Tracer("bench"), Topic: "traced"})
	tg, err := generate.New(generate.Options{Seed: 1, Posts: 200})
	if err != nil {
		b.Fatal(err)
	}

	chunkOf := func(p *produce.Producer, g *generate.Generator) func(int) {
		return func(n int) {
			if _, err := p.Run(ctx, g.Next, 0, int64(n)); err != nil {
				b.Fatal(err)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	plain, traced := chunkOf(pp, pg), chunkOf(tpr, tg)
	plain(100)
	traced(100)

	const chunk = 20_000
	var plainT, tracedT, plainCPU, tracedCPU time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		for _, step := range []struct {
			fn        func(int)
			wall, cpu *time.Duration
		}{{plain, &plainT, &plainCPU}, {traced, &tracedT, &tracedCPU}} {
			start, startCPU := time.Now(), cpuTime(b)
			step.fn(n)
			*step.wall += time.Since(start)
			*step.cpu += cpuTime(b) - startCPU
		}
	}
	b.StopTimer()
	for name, p := range map[string]*produce.Producer{"plain": pp, "traced": tpr} {
		if s := p.Stats(); s.Failed > 0 || s.Pending() > 0 {
			b.Fatalf("%s: stats %+v", name, s)
		}
	}
	eps := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	b.ReportMetric(eps(plainT), "untraced_events/s")
	b.ReportMetric(eps(tracedT), "traced_events/s")
	b.ReportMetric(eps(tracedT)/eps(plainT), "traced/untraced")
	b.ReportMetric(float64(plainCPU)/float64(tracedCPU), "traced/untraced_cpu")
}
