package ingest

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// persist makes a batch durable: dead letters first, then documents. A step
// that fails is retried until it succeeds or work is done (shutdown budget
// spent): then the batch is abandoned, not to be committed, and persist
// returns false.
func (c *Consumer) persist(work context.Context, b *batch) bool {
	c.m.batchSize.Observe(float64(b.records))
	if err := c.deadLetter(work, b); err != nil {
		c.log.Warn("batch abandoned uncommitted: dead letters not written", "records", b.records, "err", err)
		return false
	}
	ictx, endInsert := c.tr.startInsert(work, b)
	err := c.insert(ictx, b)
	endInsert(err)
	if err != nil {
		c.log.Warn("batch abandoned uncommitted: documents not stored", "records", b.records, "err", err)
		return false
	}
	return true
}

func (c *Consumer) deadLetter(ctx context.Context, b *batch) error {
	if len(b.letters) == 0 {
		return nil
	}
	bo := c.cfg.NewBackoff()
	for {
		actx, cancel := context.WithTimeout(ctx, kafkaTimeout)
		err := c.dlq.Write(actx, b.letters)
		cancel()
		if err == nil {
			if c.kafka.ok() {
				c.log.Info("dead-letter topic writable again")
			}
			for _, l := range b.letters {
				c.m.deadLettered.WithLabelValues(l.Class).Inc()
			}
			c.deadLettered.Add(int64(len(b.letters)))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		c.kafka.fail(err)
		c.m.retries.WithLabelValues(depKafka).Inc()
		c.log.Warn("writing dead letters failed, retrying", "letters", len(b.letters), "attempt", bo.Attempts()+1, "err", err)
		if bo.Wait(ctx) != nil {
			return err
		}
	}
}

func (c *Consumer) insert(ctx context.Context, b *batch) error {
	if len(b.docs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range b.docs {
		b.docs[i].IngestedAt = now
	}
	pending := b.docs
	bo := c.cfg.NewBackoff()
	for {
		actx, cancel := context.WithTimeout(ctx, insertTimeout)
		start := time.Now()
		res, rest, err := c.store.Insert(actx, pending)
		cancel()
		c.m.writeLatency.Observe(time.Since(start).Seconds())
		c.m.stored.Add(float64(res.Inserted))
		c.m.duplicates.Add(float64(res.Duplicates))
		c.stored.Add(int64(res.Inserted))
		c.duplicates.Add(int64(res.Duplicates))
		if err == nil {
			if c.mongo.ok() {
				c.log.Info("mongodb available again")
			}
			return nil
		}
		pending = rest
		if ctx.Err() != nil {
			return err
		}
		c.mongo.fail(err)
		c.m.retries.WithLabelValues(depMongo).Inc()
		c.log.Warn("storing documents failed, retrying", "pending", len(pending), "attempt", bo.Attempts()+1, "err", err)
		if bo.Wait(ctx) != nil {
			return err
		}
	}
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
