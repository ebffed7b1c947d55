// Package telemetry sets up OpenTelemetry tracing for a service, configured
// only by the standard OTEL_* environment variables, and hands out the
// maintained instrumentation the services use: franz-go's kotel hooks for
// Kafka records (W3C traceparent in the record headers) and a MongoDB
// command monitor.
//
// Tracing is off — no exporter, no provider, no hooks, no headers — unless
// an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and OTEL_SDK_DISABLED is not "true".
// When it is on, the SDK reads the rest of its settings from the process
// environment as the specification says: OTEL_EXPORTER_OTLP_PROTOCOL
// (http/protobuf, the default, or grpc), OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (default: parentbased_always_on), OTEL_EXPORTER_OTLP_HEADERS and so on.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/commentflow/commentflow/platform/config"
)

// InstrumentationName names the tracers of commentflow's own spans.
const InstrumentationName = "github.com/commentflow/commentflow"

// The variables that switch tracing on and off.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
)

// maxLinks is the default limit of links per span.
const maxLinks = 100_000

// Telemetry is a service's tracing. The zero value and nil are "off":
// every method works and does nothing.
type Telemetry struct {
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

// Config is how tracing is switched on and where spans go: the standard
// variables, declared with the service's other settings (--help, the
// startup log) by platform/cli, for every service alike. The SDK reads the
// other standard variables itself.
type Config struct {
	Endpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT
	TracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	Protocol       string // OTEL_EXPORTER_OTLP_PROTOCOL
	Disabled       bool   // OTEL_SDK_DISABLED
}

// Declare adds the tracing variables to s.
func (c *Config) Declare(s *config.Set) {
	s.String(&c.Endpoint, EnvEndpoint, "", "OpenTelemetry: OTLP endpoint to send traces to (http://host:4318 for http/protobuf, http://host:4317 for grpc); "+
		"empty = tracing off. The SDK also reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, "+
		"OTEL_TRACES_SAMPLER_ARG (default: parentbased_always_on), OTEL_EXPORTER_OTLP_HEADERS and the other standard variables from the environment")
	s.String(&c.TracesEndpoint, EnvTracesEndpoint, "", "OpenTelemetry: OTLP endpoint for traces only, the full URL (wins over "+EnvEndpoint+")")
	s.Enum(&c.Protocol, EnvProtocol, "http/protobuf", "OpenTelemetry: OTLP protocol", "http/protobuf", "grpc")
	s.Bool(&c.Disabled, EnvSDKDisabled, false, "OpenTelemetry: true = tracing off even with an endpoint")
}

// Enabled reports whether an endpoint is set and the SDK is not disabled:
// whether Start creates an exporter.
func (c Config) Enabled() bool {
	return !c.Disabled && (strings.TrimSpace(c.Endpoint) != "" || strings.TrimSpace(c.TracesEndpoint) != "")
}

// Start sets up tracing for the service named service (the default of
// OTEL_SERVICE_NAME) at version. With tracing off (see Enabled) it returns
// nil and no error, having created nothing. The error names the variable
// at fault.
func Start(ctx context.Context, service, version string, c Config) (*Telemetry, error) {
	if !c.Enabled() {
		return nil, nil
	}
	protocol := strings.TrimSpace(c.Protocol)
	// The endpoint is the declared one (the rest of the exporter's
	// settings come from the process environment).
	endpoint := strings.TrimSpace(c.TracesEndpoint)
	if endpoint == "" {
		endpoint = strings.TrimSpace(c.Endpoint)
		if protocol != "grpc" {
			endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
		}
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	case "grpc":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	default:
		return nil, fmt.Errorf("%s: %q is not supported (want http/protobuf or grpc)", EnvProtocol, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: otlp trace exporter: %w", EnvEndpoint, err)
	}
	// The service name and version are defaults: OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES (WithFromEnv) win. process.pid tells
	// replicas, and a replica before and after a restart, apart.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithProcessPID(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return newTelemetry(exp, res), nil
}

// New is tracing set up as Start sets it up (the batch span processor,
// the SDK's default sampler, the span limits), exporting to exp with the
// SDK's default resource, whatever the environment says about endpoints:
// for a benchmark that measures tracing's cost with an exporter that drops
// the spans. Services use Start.
func New(exp sdktrace.SpanExporter) *Telemetry {
	return newTelemetry(exp, resource.Default())
}

func newTelemetry(exp sdktrace.SpanExporter, res *resource.Resource) *Telemetry {
	// The sampler is the SDK's default, which reads OTEL_TRACES_SAMPLER
	// and OTEL_TRACES_SAMPLER_ARG.
	// A batch span links to every record of the batch: the SDK's default
	// of 128 links per span would drop most of them. The batch size is
	// bounded (CONSUMER_BATCH_SIZE at most 100000); OTEL_SPAN_LINK_COUNT_LIMIT
	// still wins.
	limits := sdktrace.NewSpanLimits()
	if _, set := os.LookupEnv("OTEL_SPAN_LINK_COUNT_LIMIT"); !set {
		limits.LinkCountLimit = maxLinks
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(limits))
	return &Telemetry{tp: tp, prop: propagation.TraceContext{}}
}

// On reports whether tracing is on.
func (t *Telemetry) On() bool { return t != nil && t.tp != nil }

// TracerProvider is the provider of the service's spans: a no-op one when
// tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if !t.On() {
		return noop.NewTracerProvider()
	}
	return t.tp
}

// Propagator is the W3C trace-context propagator (traceparent).
func (t *Telemetry) Propagator() propagation.TextMapPropagator {
	if !t.On() {
		return propagation.NewCompositeTextMapPropagator()
	}
	return t.prop
}

// Tracer is commentflow's own tracer.
func (t *Telemetry) Tracer() trace.Tracer {
	return t.TracerProvider().Tracer(InstrumentationName)
}

// Kafka is franz-go's kotel tracer for a client (group empty for a
// producer); nil when tracing is off.
func (t *Telemetry) Kafka(clientID, group string) *kotel.Tracer {
	if !t.On() {
		return nil
	}
	opts := []kotel.TracerOpt{kotel.TracerProvider(t.tp), kotel.TracerPropagator(t.prop)}
	if clientID != "" {
		opts = append(opts, kotel.ClientID(clientID))
	}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	return kotel.NewTracer(opts...)
}

// KafkaOpts are the client options that trace records with kotel: publish
// spans with the traceparent header injected, or receive spans continuing
// it. None when tracing is off, so that records get no header.
func (t *Telemetry) KafkaOpts(clientID, group string) []kgo.Opt {
	kt := t.Kafka(clientID, group)
	if kt == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(kt)).Hooks()...)}
}

// Shutdown flushes the spans still buffered and stops the exporter, within
// ctx (the service's SHUTDOWN_TIMEOUT).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if !t.On() {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry shutdown: %w", err)
	}
	return nil
}

// TraceID is the trace ID of ctx's span in hex, or "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Where is the traces endpoint in force, for the startup log.
func (c Config) Where() string {
	if e := strings.TrimSpace(c.TracesEndpoint); e != "" {
		return e
	}
	return strings.TrimSpace(c.Endpoint)
}
