package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/backoff"
)

// errGaveUp is what retry returns when the round gives up on a dependency.
var errGaveUp = errors.New("round given up")

// retry is the one retry path of every dependency (MongoDB, the registry,
// the dead-letter topic). It runs attempt until it succeeds; a failure marks
// dep unhealthy, counts a retry and is retried with backoff, but only while
// the round holds: once h.giveUp is done (a rebalance waits for this member,
// MaxHold passed, or Run's context is done) it records dep as the reason in
// h and returns an error wrapping errGaveUp, so that the round can end. The
// first attempt runs under first (a write: the shutdown budget; decoding:
// Run's context), so that healthy work is never cut short; the retries run
// under h.giveUp, so that one in progress is cut short when the round gives
// up. A step that is cut short is not durable, and its records are rewound
// (see round).
func (c *Consumer) retry(first context.Context, h *hold, dep, what string, attempt func(context.Context) error) error {
	hl := c.healthOf(dep)
	ctx := first
	var bo *backoff.Backoff
	for {
		err := attempt(ctx)
		if err == nil {
			if hl.ok() {
				c.log.Info(dep+" available again", "step", what)
			}
			return nil
		}
		hl.fail(err)
		if first.Err() != nil || h.giveUp.Err() != nil {
			h.fail(dep)
			return fmt.Errorf("%w: %s: %w", errGaveUp, what, err)
		}
		if bo == nil {
			bo = c.cfg.NewBackoff()
		}
		c.m.retries.WithLabelValues(dep).Inc()
		c.log.Warn(what+" failed, retrying", "dependency", dep, "attempt", bo.Attempts()+1, "err", err)
		if bo.Wait(h.giveUp) != nil {
			h.fail(dep)
			return fmt.Errorf("%w: %s: %w", errGaveUp, what, err)
		}
		ctx = h.giveUp
	}
}

func (c *Consumer) healthOf(dep string) *health {
	switch dep {
	case depMongo:
		return c.mongo
	case depRegistry:
		return c.registry
	default:
		return c.kafka
	}
}

// persist makes a batch durable: dead letters first, then documents, each
// step through retry. When a step fails for good (the round gave up, or the
// shutdown budget is spent) the batch is abandoned, not to be committed, and
// persist returns false.
func (c *Consumer) persist(work context.Context, b *batch) bool {
	c.m.batchSize.Observe(float64(b.records))
	if err := c.deadLetter(work, b); err != nil {
		c.log.Warn("batch dropped uncommitted: dead letters not written", "records", b.records, "err", err)
		return false
	}
	ictx, endInsert := c.tr.startInsert(work, b)
	err := c.insert(ictx, b)
	endInsert(err)
	if err != nil {
		c.log.Warn("batch dropped uncommitted: documents not stored", "records", b.records, "err", err)
		return false
	}
	return true
}

func (c *Consumer) deadLetter(work context.Context, b *batch) error {
	if len(b.letters) == 0 {
		return nil
	}
	envelopes := 0
	err := c.retry(work, b.hold, depKafka, "writing dead letters", func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, kafkaTimeout)
		defer cancel()
		n, err := c.dlq.Write(actx, b.letters)
		envelopes = n
		return err
	})
	if err != nil {
		return err
	}
	if envelopes > 0 {
		c.m.withoutValue.Add(float64(envelopes))
		c.log.Warn("the dead-letter topic refused whole records: wrote envelopes without their values; the records stay at their source offsets",
			"envelopes", envelopes)
	}
	for _, l := range b.letters {
		c.m.deadLettered.WithLabelValues(l.Class).Inc()
	}
	c.deadLettered.Add(int64(len(b.letters)))
	return nil
}

func (c *Consumer) insert(work context.Context, b *batch) error {
	if len(b.docs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range b.docs {
		b.docs[i].IngestedAt = now
	}
	pending := b.docs
	var rejected []store.Rejected
	err := c.retry(work, b.hold, depMongo, "storing documents", func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, insertTimeout)
		defer cancel()
		start := time.Now()
		res, rest, err := c.store.Insert(actx, pending)
		c.m.writeLatency.Observe(time.Since(start).Seconds())
		c.m.stored.Add(float64(res.Inserted))
		c.m.duplicates.Add(float64(res.Duplicates))
		c.stored.Add(int64(res.Inserted))
		c.duplicates.Add(int64(res.Duplicates))
		rejected = append(rejected, res.Rejected...)
		if err != nil {
			pending = rest
		}
		return err
	})
	if err != nil || len(rejected) == 0 {
		return err
	}
	// Refused for good (class store): dead-letter them like any poison,
	// before the batch is committed.
	for _, rj := range rejected {
		c.log.Warn("document refused by the database for good, dead-lettering", "partition", rj.Doc.Kafka.Partition,
			"offset", rj.Doc.Kafka.Offset, "class", store.ErrorClass, "err", rj.Err)
	}
	return c.deadLetter(work, rejectedLetters(b, rejected))
}

// rejectedLetters are the dead letters (class "store") of the documents
// the database refused for good, in a batch of their own.
func rejectedLetters(b *batch, rejected []store.Rejected) *batch {
	at := make(map[store.Position]*kgo.Record, len(b.recs))
	for i, d := range b.docs {
		at[d.Kafka] = b.recs[i]
	}
	out := &batch{hold: b.hold}
	for _, r := range rejected {
		out.letters = append(out.letters, dlq.Letter{Record: at[r.Doc.Kafka], Class: store.ErrorClass, Err: r.Err})
	}
	return out
}

// waitHealed runs after a round gave up on dep, once the rebalance is
// allowed: it pauses fetching and pings dep with backoff until it answers
// (or, for a dependency without a ping, one backoff step), then resumes.
// Nothing is polled meanwhile, so rebalances go through at once.
func (c *Consumer) waitHealed(ctx context.Context, dep string) {
	c.cl.PauseFetchTopics(c.cfg.Topic)
	defer c.cl.ResumeFetchTopics(c.cfg.Topic)
	hl := c.healthOf(dep)
	bo := c.cfg.NewBackoff()
	for {
		if bo.Wait(ctx) != nil || hl.ping == nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
		err := hl.ping(pctx)
		cancel()
		if err == nil {
			return
		}
		c.log.Debug("waiting for "+dep+" to answer before fetching again", "attempt", bo.Attempts(), "err", err)
	}
}

// batchDone logs, at debug level, which partition offsets this member
// worked on from when to when, and whether they were stored (the tests
// check from these lines that no two members overlap on a partition).
func (c *Consumer) batchDone(b *batch, stored bool) {
	if !c.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	type span struct {
		Partition   int32
		First, Last int64
	}
	spans := make([]span, 0, len(b.first))
	for k, f := range b.first {
		spans = append(spans, span{Partition: k.p, First: f.Offset, Last: b.last[k].Offset})
	}
	c.log.Debug("batch done", "polled", b.opened, "done", time.Now(), "stored", stored, "offsets", spans)
}

// commit commits the batch's offsets. A failed commit is not retried: the
// records are stored, the next batch's commit covers them, and if the
// partition moved meanwhile its new owner skips them as duplicates.
func (c *Consumer) commit(ctx context.Context, b *batch) {
	recs := make([]*kgo.Record, 0, len(b.last))
	for _, r := range b.last {
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	if err := c.cl.CommitRecords(cctx, recs...); err != nil {
		c.m.commitErrors.Inc()
		c.log.Warn("offset commit failed; the records are stored and will be skipped as duplicates if redelivered",
			"records", b.records, "err", err)
		return
	}
	c.m.commits.Inc()
}
