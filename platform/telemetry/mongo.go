package telemetry

import (
	"context"
	"net"
	"strconv"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// MongoMonitor is a MongoDB command monitor that makes a client span per
// command with the database semantic conventions (db.system.name,
// db.namespace, db.collection.name, db.operation.name, server.address), as
// a child of the operation's context; nil when tracing is off.
//
// It stands in for otelmongo: the contrib module for mongo-driver v2
// (go.opentelemetry.io/contrib/instrumentation/go.mongodb.org/mongo-driver/v2/mongo/otelmongo)
// is excluded from OpenTelemetry's releases and absent from the Go module
// proxy, and the released otelmongo only works with mongo-driver v1. It
// works the same way (a CommandMonitor) but, unlike otelmongo, only traces
// commands that run under a span: readiness pings and the driver's own
// background commands make no root spans of their own.
func (t *Telemetry) MongoMonitor() *event.CommandMonitor {
	if !t.On() {
		return nil
	}
	m := &mongoMonitor{tracer: t.Tracer()}
	return &event.CommandMonitor{Started: m.started, Succeeded: m.succeeded, Failed: m.failed}
}

type mongoMonitor struct {
	tracer trace.Tracer
	spans  sync.Map // request ID (int64) → trace.Span
}

func (m *mongoMonitor) started(ctx context.Context, e *event.CommandStartedEvent) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	coll := ""
	if el, err := e.Command.IndexErr(0); err == nil {
		coll, _ = el.Value().StringValueOK()
	}
	name := e.CommandName
	attrs := []attribute.KeyValue{
		semconv.DBSystemNameMongoDB,
		semconv.DBNamespace(e.DatabaseName),
		semconv.DBOperationName(e.CommandName),
	}
	if coll != "" {
		name += " " + coll
		attrs = append(attrs, semconv.DBCollectionName(coll))
	}
	if host, port := hostPort(e.ConnectionID); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	_, span := m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	m.spans.Store(e.RequestID, span)
}

func (m *mongoMonitor) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	if s, ok := m.spans.LoadAndDelete(e.RequestID); ok {
		s.(trace.Span).End()
	}
}

func (m *mongoMonitor) failed(_ context.Context, e *event.CommandFailedEvent) {
	if s, ok := m.spans.LoadAndDelete(e.RequestID); ok {
		span := s.(trace.Span)
		span.RecordError(e.Failure)
		span.SetStatus(codes.Error, e.Failure.Error())
		span.End()
	}
}

// hostPort reads the server address from a driver connection ID, which is
// "host:port[-N]".
func hostPort(connID string) (string, int) {
	for i := len(connID) - 1; i >= 0; i-- {
		if connID[i] == '-' {
			if host, port, err := net.SplitHostPort(connID[:i]); err == nil {
				p, _ := strconv.Atoi(port)
				return host, p
			}
			break
		}
	}
	if host, port, err := net.SplitHostPort(connID); err == nil {
		p, _ := strconv.Atoi(port)
		return host, p
	}
	return "", 0
}
