package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/schemas"
)

// batch is a run of polled records: the documents to insert, the poison to
// dead-letter, and per partition the last record, whose offset is committed
// once the batch is done.
type batch struct {
	opened  time.Time // when its first record was polled
	records int
	docs    []store.Document
	letters []dlq.Letter
	last    map[partition]*kgo.Record
	spans   []trace.Span // the records' process spans, while tracing
	links   []trace.Link // to the process spans of the documents

	abandoned bool          // set by the writer: not stored, not to be committed
	done      chan struct{} // closed once committed (or abandoned)
}

type partition struct {
	topic string
	p     int32
}

func newBatch(capacity int) *batch {
	return &batch{
		opened: time.Now(),
		docs:   make([]store.Document, 0, capacity),
		last:   make(map[partition]*kgo.Record, 4),
		done:   make(chan struct{}),
	}
}

func (b *batch) add(r *kgo.Record) {
	b.records++
	k := partition{r.Topic, r.Partition}
	if prev, ok := b.last[k]; !ok || r.Offset > prev.Offset {
		b.last[k] = r
	}
}

// round is one hold of the rebalance block: it polls until the stream is
// idle, a rebalance waits, maxHold passed or ctx is done, handing full
// batches to the writer as it goes; then it waits for the writer to finish
// everything it handed over. It reports whether to stop (ctx done or the
// client closed).
func (c *Consumer) round(ctx, work context.Context, out chan<- *batch) (stop bool) {
	c.rebalanceWanted.Store(false)
	var (
		held     time.Time // when this round's first records were polled
		cur      *batch    // being filled
		inFlight *batch    // the last batch handed to the writer
	)
	submit := func() bool {
		b := cur
		cur = nil
		if b == nil || b.records == 0 {
			return true
		}
		select {
		case out <- b:
			inFlight = b
			return true
		case <-work.Done(): // shutdown budget spent: b stays uncommitted
			return false
		}
	}
	finish := func(stop bool) bool {
		submit()
		if inFlight != nil {
			<-inFlight.done // the writer gives up when work is done
		}
		return stop
	}

	for {
		if !held.IsZero() && (ctx.Err() != nil || c.rebalanceWanted.Load() || time.Since(held) >= c.cfg.MaxHold) {
			return finish(ctx.Err() != nil)
		}
		want := c.cfg.BatchSize
		if cur != nil {
			want -= cur.records
		}
		want = min(want, c.cfg.MaxPollRecords)

		pctx, cancel := ctx, context.CancelFunc(func() {})
		switch {
		case held.IsZero():
			// Nothing held: wait for records as long as it takes
			// (a poll that is waiting does not block rebalances).
		case cur != nil:
			pctx, cancel = context.WithDeadline(ctx, cur.opened.Add(c.cfg.BatchTimeout))
		default:
			pctx, cancel = context.WithTimeout(ctx, c.cfg.BatchTimeout)
		}
		fs := c.cl.PollRecords(pctx, want)
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if fs.IsClientClosed() {
			return finish(true)
		}
		n, fetchErr, aborted := c.take(ctx, fs, &cur)
		if n > 0 && held.IsZero() {
			held = time.Now()
		}
		if aborted || ctx.Err() != nil {
			return finish(true)
		}
		if cur != nil {
			full := cur.records >= c.cfg.BatchSize
			if full || time.Since(cur.opened) >= c.cfg.BatchTimeout {
				if !submit() {
					return finish(true)
				}
				if !full {
					// The batch timed out before filling: the stream
					// is not saturating, release the hold.
					return finish(false)
				}
			}
		}
		if n == 0 {
			switch {
			case fetchErr:
				// Only errors: finish what is held, then back off a
				// little before polling again.
				stop := finish(false)
				_ = c.cfg.NewBackoff().Wait(ctx)
				return stop || ctx.Err() != nil
			case timedOut && cur == nil:
				return finish(false) // idle
			}
		}
	}
}

// take records the fetch errors of a poll and decodes its records
// into *cur (opening a batch when needed). It returns how many records it
// took, whether the poll carried a real fetch error, and whether it was
// aborted by ctx while waiting for the registry: then the records from the
// one that could not be decoded on are not in the batch (not committed).
func (c *Consumer) take(ctx context.Context, fs kgo.Fetches, cur **batch) (n int, fetchErr, aborted bool) {
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return // our own poll deadline or shutdown
		}
		fetchErr = true
		c.kafka.fail(fmt.Errorf("fetch %s[%d]: %w", topic, p, err))
		c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
	})
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if aborted || len(p.Records) == 0 {
			return
		}
		for _, r := range p.Records {
			if *cur == nil {
				*cur = newBatch(c.cfg.BatchSize)
			}
			if !c.decodeInto(ctx, r, *cur) {
				aborted = true
				return
			}
			n++
		}
	})
	c.m.consumed.Add(float64(n))
	c.consumed.Add(int64(n))
	switch {
	case n > 0:
		c.kafka.ok()
	case !fetchErr:
		c.kafka.clear()
	}
	return n, fetchErr, aborted
}

// decodeInto decodes r into b: a document, or a dead letter for poison. A
// registry outage is not poison: it retries with backoff until the registry
// answers or ctx is done (then it returns false and r is not added).
func (c *Consumer) decodeInto(ctx context.Context, r *kgo.Record, b *batch) bool {
	var bo *backoff.Backoff
	span, traceID := c.tr.process(r)
	for {
		com, id, err := c.dec.Decode(ctx, r.Value)
		switch {
		case err == nil:
			if c.registry.ok() {
				c.log.Info("schema registry available again")
			}
			b.add(r)
			b.docs = append(b.docs, store.Document{
				ID:        com.ID,
				PostID:    com.PostID,
				Name:      com.Name,
				Text:      com.Text,
				Address:   com.Address,
				CreatedAt: com.CreatedAt.UTC(),
				Kafka:     store.Position{Partition: r.Partition, Offset: r.Offset},
				SchemaID:  id,
				TraceID:   traceID,
			})
			b.track(span, true)
			return true
		case schemas.Retryable(err):
			if bo == nil {
				bo = c.cfg.NewBackoff()
			}
			c.registry.fail(err)
			c.m.retries.WithLabelValues(depRegistry).Inc()
			c.log.Warn("schema registry unavailable, retrying", "partition", r.Partition, "offset", r.Offset,
				"attempt", bo.Attempts()+1, "err", err)
			if bo.Wait(ctx) != nil {
				if span != nil {
					span.End() // not taken: redelivered later
				}
				return false
			}
		default:
			class := string(schemas.ClassOf(err))
			if class == "" {
				class = "unknown"
			}
			b.add(r)
			b.letters = append(b.letters, dlq.Letter{Record: r, Class: class, Err: err})
			poison(span, class, err)
			b.track(span, false)
			c.log.Warn("poison record, dead-lettering", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "class", class, "err", err)
			return true
		}
	}
}
