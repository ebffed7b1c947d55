package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/schemas"
)

// batch is a run of polled records: the documents to insert, the poison to
// dead-letter, and per partition its first record (where to rewind if the
// batch is dropped) and its last record, whose offset is committed once the
// batch is done.
type batch struct {
	hold    *hold     // the round it belongs to
	opened  time.Time // when its first record was polled
	records int
	docs    []store.Document
	recs    []*kgo.Record // recs[i] is the record of docs[i]
	letters []dlq.Letter
	first   map[partition]*kgo.Record
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

func newBatch(h *hold, capacity int) *batch {
	return &batch{
		hold:   h,
		opened: time.Now(),
		docs:   make([]store.Document, 0, capacity),
		first:  make(map[partition]*kgo.Record, 4),
		last:   make(map[partition]*kgo.Record, 4),
		done:   make(chan struct{}),
	}
}

func (b *batch) add(r *kgo.Record) {
	b.records++
	k := partition{r.Topic, r.Partition}
	if prev, ok := b.first[k]; !ok || r.Offset < prev.Offset {
		b.first[k] = r
	}
	if prev, ok := b.last[k]; !ok || r.Offset > prev.Offset {
		b.last[k] = r
	}
}

// hold is what the loop and the writer share about one round.
type hold struct {
	// giveUp is done once the round must stop retrying a failing
	// dependency: a rebalance waits for this member, MaxHold passed since
	// the round's first records were polled, or Run's context is done.
	// Work that succeeds ignores it.
	giveUp context.Context
	cancel context.CancelFunc
	timer  *time.Timer

	mu        sync.Mutex
	abandoned bool                          // a batch was dropped: no later batch of the round may be stored
	failed    string                        // the dependency the round gave up on
	rewind    map[partition]kgo.EpochOffset // per partition, the first polled record that is not durable
}

// newHold starts a round's hold. OnPartitionsCallbackBlocked cancels the
// current hold's giveUp.
func (c *Consumer) newHold(ctx context.Context) *hold {
	h := &hold{rewind: map[partition]kgo.EpochOffset{}}
	h.giveUp, h.cancel = context.WithCancel(ctx)
	c.rebalanceWanted.Store(false)
	c.hold.Store(h)
	if c.rebalanceWanted.Load() {
		h.cancel()
	}
	return h
}

// held starts the MaxHold clock, at the round's first records.
func (h *hold) held(maxHold time.Duration) {
	if h.timer == nil {
		h.timer = time.AfterFunc(maxHold, h.cancel)
	}
}

func (h *hold) end() {
	if h.timer != nil {
		h.timer.Stop()
	}
	h.cancel()
}

// fail records that the round gives up because dep is failing.
func (h *hold) fail(dep string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed == "" {
		h.failed = dep
	}
}

// drop records that r (and what follows it in its partition) will not be
// made durable in this round.
func (h *hold) drop(r *kgo.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := partition{r.Topic, r.Partition}
	if prev, ok := h.rewind[k]; !ok || r.Offset < prev.Offset {
		h.rewind[k] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
	}
}

// abandon drops b, and marks the round abandoned.
func (h *hold) abandon(b *batch) {
	h.mu.Lock()
	h.abandoned = true
	h.mu.Unlock()
	for _, r := range b.first {
		h.drop(r)
	}
}

func (h *hold) failedDep() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

func (h *hold) isAbandoned() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.abandoned
}

// round is one hold of the rebalance block: it polls until the stream is
// idle, a rebalance waits, MaxHold passed or ctx is done, handing full
// batches to the writer as it goes; then it waits for the writer to finish
// everything it handed over. It reports whether to stop (ctx done or the
// client closed), and the dependency it gave up on, if any: then every
// record of the round that is not durable is dropped and its partition is
// rewound to it (its last committed offset), so that the partition can move
// to another member or be polled again here once the dependency is back.
func (c *Consumer) round(ctx, work context.Context, out chan<- *batch) (stop bool, failed string) {
	h := c.newHold(ctx)
	defer h.end()
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
			b.abandoned = true
			b.endSpans()
			return false
		}
	}
	finish := func(stop bool) (bool, string) {
		// The open batch is stored even when the round gave up on the
		// registry: its records precede, in their partitions, the first
		// one that could not be decoded. When the round gave up on a
		// write, the writer drops it.
		submit()
		if inFlight != nil {
			<-inFlight.done // the writer gives up when work is done
		}
		h.mu.Lock()
		failed, rewind := h.failed, maps.Clone(h.rewind)
		h.mu.Unlock()
		if !stop && len(rewind) > 0 {
			set := map[string]map[int32]kgo.EpochOffset{}
			for k, o := range rewind {
				if set[k.topic] == nil {
					set[k.topic] = map[int32]kgo.EpochOffset{}
				}
				set[k.topic][k.p] = o
			}
			c.cl.SetOffsets(set)
			c.log.Warn("round given up: uncommitted records dropped, partitions rewound to their last committed offsets",
				"dependency", failed, "rewound", fmt.Sprint(set))
		}
		return stop, failed
	}

	for {
		if !held.IsZero() && (ctx.Err() != nil || c.rebalanceWanted.Load() || time.Since(held) >= c.cfg.MaxHold || h.failedDep() != "") {
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
		if held.IsZero() && fs.NumRecords() > 0 {
			held = time.Now()
			h.held(c.cfg.MaxHold)
		}
		n, fetchErr, aborted := c.take(ctx, h, fs, &cur)
		if ctx.Err() != nil {
			return finish(true)
		}
		if aborted {
			return finish(false) // gave up on the registry
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
				stop, failed := finish(false)
				_ = c.cfg.NewBackoff().Wait(ctx)
				return stop || ctx.Err() != nil, failed
			case timedOut && cur == nil:
				return finish(false) // idle
			}
		}
	}
}

// take records the fetch errors of a poll and decodes its records
// into *cur (opening a batch when needed). It returns how many records it
// took, whether the poll carried a real fetch error, and whether it was
// aborted (ctx done, or the round gave up on the registry): then the
// records from the one that could not be decoded on are not in the batch
// (not committed), and are marked dropped in h.
func (c *Consumer) take(ctx context.Context, h *hold, fs kgo.Fetches, cur **batch) (n int, fetchErr, aborted bool) {
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return // our own poll deadline or shutdown
		}
		fetchErr = true
		c.kafka.fail(fmt.Errorf("fetch %s[%d]: %w", topic, p, err))
		c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
	})
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		if aborted {
			h.drop(p.Records[0])
			return
		}
		for _, r := range p.Records {
			if *cur == nil {
				*cur = newBatch(h, c.cfg.BatchSize)
			}
			if !c.decodeInto(ctx, h, r, *cur) {
				aborted = true
				h.drop(r)
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
// registry outage is not poison: it is retried (see retry) until the
// registry answers, the round gives up or ctx is done; then it returns false
// and r is not added (its process span ends, marked dropped).
func (c *Consumer) decodeInto(ctx context.Context, h *hold, r *kgo.Record, b *batch) bool {
	span, traceID := c.tr.process(r)
	com, id, err := c.dec.Decode(ctx, r.Value)
	if schemas.Retryable(err) {
		known := err
		rerr := c.retry(ctx, h, depRegistry, "decoding", func(actx context.Context) error {
			if known != nil {
				e := known
				known = nil
				return e
			}
			com, id, err = c.dec.Decode(actx, r.Value)
			if schemas.Retryable(err) {
				return err
			}
			return nil // decoded, or poison: either way decided
		})
		if rerr != nil {
			dropped(span)
			return false
		}
	}
	if err == nil {
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
		b.recs = append(b.recs, r)
		b.track(span, true)
		return true
	}
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
