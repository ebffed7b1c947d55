package ingest

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/platform/telemetry"
)

// tracing is the consumer's part of each comment's trace; nil when tracing
// is off, and then every method does nothing.
//
// Each record gets a "process" span (kotel's), a child of the producer's
// span found in its traceparent header, so a redelivered record continues
// the same trace. It ends when the record's batch is committed (or
// dropped, to be redelivered; so does the span of a record its round gave
// up on before it was in a batch): its length is the time from poll to
// durable. A poison record's span records the error class. A batch's
// InsertMany gets one span linking to the process span of every document
// it stores (a batch has many parents: the messaging conventions' links).
type tracing struct {
	kt         *kotel.Tracer
	tracer     trace.Tracer
	insertName string
	attrs      []attribute.KeyValue
}

func newTracing(tel *telemetry.Telemetry, group, db, coll string) *tracing {
	kt := tel.Kafka(clientID, group)
	if kt == nil {
		return nil
	}
	return &tracing{
		kt:         kt,
		tracer:     tel.Tracer(),
		insertName: "InsertMany " + coll,
		attrs: []attribute.KeyValue{
			attribute.String("db.system.name", "mongodb"),
			attribute.String("db.namespace", db),
			attribute.String("db.collection.name", coll),
			attribute.String("db.operation.name", "InsertMany"),
			attribute.String("messaging.consumer.group.name", group),
		},
	}
}

// clientID is the consumer's Kafka client ID, in kotel's spans.
const clientID = "commentflow-consumer"

// kafkaOpts are the consumer client's kotel hooks (receive spans).
func kafkaOpts(tel *telemetry.Telemetry, group string) []kgo.Opt {
	return tel.KafkaOpts(clientID, group)
}

// process starts r's process span and returns it with its trace ID.
func (t *tracing) process(r *kgo.Record) (trace.Span, string) {
	if t == nil {
		return nil, ""
	}
	_, span := t.kt.WithProcessSpan(r)
	return span, span.SpanContext().TraceID().String()
}

// poison marks a dead-lettered record's span with its error class.
func poison(span trace.Span, class string, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("error.type", class))
	span.RecordError(err)
	span.SetStatus(codes.Error, "dead-lettered: "+class)
}

// track keeps a record's span in its batch; stored says it becomes a
// document (the insert span links to it).
func (b *batch) track(span trace.Span, stored bool) {
	if span == nil {
		return
	}
	b.spans = append(b.spans, span)
	if stored {
		b.links = append(b.links, trace.Link{SpanContext: span.SpanContext()})
	}
}

// startInsert starts the span of a batch's InsertMany.
func (t *tracing) startInsert(ctx context.Context, b *batch) (context.Context, func(error)) {
	if t == nil || len(b.docs) == 0 {
		return ctx, func(error) {}
	}
	ctx, span := t.tracer.Start(ctx, t.insertName,
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(b.links...),
		trace.WithAttributes(t.attrs...),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(b.docs))))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// droppedStatus is the status of the process span of a record dropped
// uncommitted (its round gave up on a dependency, or the shutdown budget
// ran out): it will be redelivered, and continue the same trace then.
const droppedStatus = "dropped uncommitted: will be redelivered"

// endSpans ends the process spans of a batch that is committed or
// dropped.
func (b *batch) endSpans() {
	for _, s := range b.spans {
		if b.abandoned {
			s.SetStatus(codes.Error, droppedStatus)
		}
		s.End()
	}
	b.spans, b.links = nil, nil
}

// dropped ends the process span of a record that was not taken into a
// batch (the round gave up on the registry while decoding it).
func dropped(span trace.Span) {
	if span == nil {
		return
	}
	span.SetStatus(codes.Error, droppedStatus)
	span.End()
}
