package produce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/commentflow/commentflow/schemas"
)

// Producer encodes comments in the Confluent wire format and produces them
// asynchronously, keyed by post_id. Records are pooled and reused once
// their promise has run, with their key and value buffers, so the steady
// state allocates only what the encoder and franz-go do.
//
// Back-pressure is franz-go's own: producing blocks while the client holds
// MaxBufferedRecords, and resumes a batch at a time.
//
// Produce and Run may be called from one goroutine at a time; Stats, Flush,
// Abort and the metrics from any.
type Producer struct {
	cl    *kgo.Client
	enc   *schemas.Encoder
	log   *slog.Logger
	debug bool
	m     *Metrics

	// tracer starts each comment's trace (nil: tracing off).
	tracer   trace.Tracer
	spanName string

	items   sync.Pool // *item
	promise func(*kgo.Record, error)

	// abortCtx is every record's produce context: it ends only on Abort,
	// which fails a blocked Produce and the records not yet sent. A
	// shutdown must flush buffered records, not cancel them, so it is not
	// the caller's context.
	abortCtx context.Context
	abort    context.CancelFunc

	sent, produced, failed atomic.Int64
	onHealth               func(error)

	// Promise-goroutine state: franz-go calls promises serially.
	healthy     bool
	failedSince int64     // failures not yet logged
	lastErrLog  time.Time // last error log line
}

// item is one reusable record. It is its record's Context, which lets the
// promise find the comment without an allocation (and whose Done is nil:
// the record is canceled only through the produce context, abortCtx).
// With tracing on, the record's Context is a span's context derived from
// the item, which finds it through Value(itemKey{}).
type item struct {
	context.Context
	c     schemas.Comment
	rec   kgo.Record
	key   []byte
	val   []byte
	start time.Time
	span  trace.Span // the comment's "create" span, while tracing
}

type itemKey struct{}

// Value makes the item findable from the contexts derived from it.
func (it *item) Value(key any) any {
	if key == (itemKey{}) {
		return it
	}
	return it.Context.Value(key)
}

// itemOf is the item of a record produced by send.
func itemOf(r *kgo.Record) *item {
	if it, ok := r.Context.(*item); ok {
		return it
	}
	return r.Context.Value(itemKey{}).(*item)
}

// Options are a Producer's optional collaborators.
type Options struct {
	// Logger gets failures (rate-limited) and, at debug level, every
	// acknowledged comment. Nil discards.
	Logger *slog.Logger
	// Metrics are updated as records complete; nil makes unregistered ones.
	Metrics *Metrics
	// OnHealth is called with the first error after a success, and with
	// nil on the first success after an error (for readiness).
	OnHealth func(error)
	// Tracer, when not nil, starts a trace per comment as it is
	// generated: a "create" span (the messaging conventions' creation
	// context of a message), ended when the record is acknowledged or
	// fails; the client's kotel hooks make its publish span a child and
	// put the traceparent header on the record. Nil: tracing off.
	Tracer trace.Tracer
	// Topic names the create span ("create <topic>").
	Topic string
}

// New is a Producer on cl (built with ClientOpts) framing with enc.
func New(cl *kgo.Client, enc *schemas.Encoder, opts Options) *Producer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Producer{
		cl:       cl,
		enc:      enc,
		log:      opts.Logger,
		debug:    opts.Logger.Enabled(context.Background(), slog.LevelDebug),
		m:        opts.Metrics,
		onHealth: opts.OnHealth,
		healthy:  true,
		tracer:   opts.Tracer,
		spanName: "create " + opts.Topic,
	}
	if p.m == nil {
		p.m = NewMetrics()
	}
	p.items.New = func() any { return &item{Context: context.Background()} }
	p.promise = p.done
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	return p
}

// Abort gives up: a Produce blocked on a full buffer returns, and buffered
// records not yet sent fail with context.Canceled (sent ones still await
// their answer: the idempotent producer cannot know whether they landed).
// For a shutdown whose flush ran out of time.
func (p *Producer) Abort() { p.abort() }

// send encodes it.c into its record and hands it to franz-go, blocking
// while the client's buffer is full.
func (p *Producer) send(it *item) error {
	val, err := p.enc.Append(it.val[:0], &it.c)
	if err != nil {
		p.items.Put(it)
		return fmt.Errorf("produce: %w", err)
	}
	it.val = val
	it.key = append(it.key[:0], it.c.PostID...)
	it.rec = kgo.Record{Key: it.key, Value: it.val, Timestamp: it.c.CreatedAt, Context: it}
	if p.tracer != nil {
		it.rec.Context, it.span = p.startSpan(it)
	}
	it.start = time.Now()
	p.sent.Add(1)
	p.cl.Produce(p.abortCtx, &it.rec, p.promise)
	return nil
}

// Produce produces a copy of c asynchronously; Flush waits for it. It
// blocks while the client's buffer is full, until Abort.
func (p *Producer) Produce(c *schemas.Comment) error {
	it := p.items.Get().(*item)
	it.c = *c
	return p.send(it)
}

// startSpan starts the trace of it's comment.
func (p *Producer) startSpan(it *item) (context.Context, trace.Span) {
	return p.tracer.Start(it, p.spanName,
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "create"),
			attribute.String("messaging.message.id", it.c.ID),
			attribute.String("commentflow.comment.id", it.c.ID),
			attribute.String("commentflow.post.id", it.c.PostID),
		))
}

// done is the promise of every record.
func (p *Producer) done(r *kgo.Record, err error) {
	it := itemOf(r)
	if it.span != nil {
		if err != nil {
			it.span.RecordError(err)
			it.span.SetStatus(codes.Error, err.Error())
		}
		it.span.End()
		it.span = nil
	}
	if err != nil {
		p.failed.Add(1)
		p.m.errors.Inc()
		p.failure(it, err)
	} else {
		p.produced.Add(1)
		p.m.produced.Inc()
		p.m.latency.Observe(time.Since(it.start).Seconds())
		if !p.healthy {
			p.healthy = true
			p.log.Info("producing again", "partition", r.Partition, "offset", r.Offset)
			if p.onHealth != nil {
				p.onHealth(nil)
			}
		}
		if p.debug {
			p.log.LogAttrs(context.Background(), slog.LevelDebug, "event produced",
				slog.String("id", it.c.ID),
				slog.String("post_id", it.c.PostID),
				slog.String("name", it.c.Name),
				slog.String("text", it.c.Text),
				slog.String("address", it.c.Address),
				slog.String("created_at", it.c.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")),
				slog.Int("partition", int(r.Partition)),
				slog.Int64("offset", r.Offset),
			)
		}
	}
	it.c = schemas.Comment{} // drop the strings while the record waits for reuse
	p.items.Put(it)
}

// failure logs a failed record: every one at debug level, and at error
// level the first after a success, then at most one summary a second.
func (p *Producer) failure(it *item, err error) {
	if p.debug {
		p.log.Debug("event failed", "id", it.c.ID, "post_id", it.c.PostID, "err", err)
	}
	p.failedSince++
	first := p.healthy
	if first || time.Since(p.lastErrLog) >= time.Second {
		p.log.Error("produce failed", "err", err, "failed_since_last_report", p.failedSince)
		p.failedSince, p.lastErrLog = 0, time.Now()
	}
	if first {
		p.healthy = false
		if p.onHealth != nil {
			p.onHealth(fmt.Errorf("producing: %w", err))
		}
	}
}

// Flush waits until every record handed to the client is acknowledged or
// failed, or ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w (%d records still buffered)", err, p.cl.BufferedProduceRecords())
	}
	return nil
}

// Stats are the producer's counts so far.
type Stats struct {
	Sent     int64 // handed to the client
	Produced int64 // acknowledged by the brokers (acks=all)
	Failed   int64 // failed after retries or the delivery timeout
}

// Pending is how many records await their outcome.
func (s Stats) Pending() int64 { return s.Sent - s.Produced - s.Failed }

// Stats returns the counts so far.
func (p *Producer) Stats() Stats {
	// Read the outcomes first, so Pending is never negative.
	produced, failed := p.produced.Load(), p.failed.Load()
	return Stats{Sent: p.sent.Load(), Produced: produced, Failed: failed}
}

// ErrFailed is wrapped by the error of a run whose records failed.
var ErrFailed = errors.New("records failed")

// Run produces comments from next at rate per second (0 = as fast as
// possible), count of them (0 = until ctx is done). It returns how many it
// handed to the client, without waiting for their acknowledgements (see
// Flush); a canceled ctx ends it with no error. ctx only stops the loop:
// records already handed over are not canceled with it.
func (p *Producer) Run(ctx context.Context, next func(*schemas.Comment), perSecond float64, count int64) (int64, error) {
	var lim *rate.Limiter
	if perSecond > 0 {
		// A burst of at most 50ms of events keeps low rates smooth and
		// high ones cheap.
		lim = rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/20)))
	}
	var n int64
	for count == 0 || n < count {
		if lim != nil {
			if lim.Wait(ctx) != nil {
				break // ctx is done, or its deadline comes before the next token
			}
		} else if ctx.Err() != nil {
			break
		}
		if p.abortCtx.Err() != nil {
			break
		}
		it := p.items.Get().(*item)
		next(&it.c)
		if err := p.send(it); err != nil {
			return n, err
		}
		n++
	}
	// count reached, or stopped by ctx or Abort: a stop is not a failure.
	return n, nil //nolint:nilerr // the errors of lim.Wait and ctx.Err above only mean "stop", which Run reports as no error (see its doc)
}
