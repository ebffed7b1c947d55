package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/telemetry"
)

// env is the tracing configuration m declares, as a service reads it.
func env(t *testing.T, m map[string]string) telemetry.Config {
	t.Helper()
	var c telemetry.Config
	s := config.New("test")
	c.Declare(s)
	if err := s.Parse(nil, func(k string) string { return m[k] }); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOffCreatesNothing(t *testing.T) {
	for name, e := range map[string]map[string]string{
		"no endpoint":                   {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		"sdk disabled":                  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
		"sdk disabled, traces endpoint": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces", "OTEL_SDK_DISABLED": "TRUE"},
	} {
		t.Run(name, func(t *testing.T) {
			tel, err := telemetry.Start(context.Background(), "svc", "v", env(t, e))
			if err != nil || tel != nil || tel.On() {
				t.Fatalf("Start = %v, %v; want nil (off, nothing created)", tel, err)
			}
			if tel.KafkaOpts("c", "g") != nil || tel.Kafka("c", "g") != nil || tel.MongoMonitor() != nil {
				t.Fatal("instrumentation handed out while off")
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOnWithEndpoint(t *testing.T) {
	for _, e := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces", "OTEL_SDK_DISABLED": "false"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
	} {
		tel, err := telemetry.Start(context.Background(), "svc", "v", env(t, e))
		if err != nil || !tel.On() {
			t.Fatalf("%v: Start = %v, %v; want on", e, tel, err)
		}
		if tel.KafkaOpts("c", "g") == nil || tel.MongoMonitor() == nil {
			t.Fatal("no instrumentation while on")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // nothing listens: shutdown must not hang
		_ = tel.Shutdown(ctx)
	}
}

func TestBadProtocolNamesVariable(t *testing.T) {
	var c telemetry.Config
	s := config.New("test")
	c.Declare(s)
	err := s.Parse(nil, func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("err = %v, want one naming OTEL_EXPORTER_OTLP_PROTOCOL", err)
	}
}

// New sets tracing up as Start does, whatever exporter it is given: a
// batch span keeps all its links (the SDK's default limit is 128).
func TestNewTracesAsStartDoes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := telemetry.New(exp)
	if !tel.On() || tel.Kafka("c", "g") == nil {
		t.Fatal("New: tracing off")
	}
	links := make([]trace.Link, 500)
	for i := range links {
		links[i] = trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, byte(i >> 8), byte(i)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})}
	}
	_, span := tel.Tracer().Start(context.Background(), "batch", trace.WithLinks(links...))
	span.End()
	flusher, ok := tel.TracerProvider().(interface{ ForceFlush(context.Context) error })
	if !ok {
		t.Fatalf("provider %T cannot flush", tel.TracerProvider())
	}
	if err := flusher.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := exp.GetSpans() // before Shutdown, which empties exp
	defer func() { _ = tel.Shutdown(context.Background()) }()
	if len(got) != 1 {
		t.Fatalf("exported %d spans, want 1", len(got))
	}
	if n := len(got[0].Links); n != len(links) {
		t.Fatalf("the span kept %d links, want %d", n, len(links))
	}
}
