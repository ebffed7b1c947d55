// Package ingest is the heart of the consumer: it reads comment events from
// Kafka as a member of a consumer group, decodes them, stores them in
// MongoDB exactly once, dead-letters poison, and commits offsets only after
// the records up to them are stored or dead-lettered.
//
// # Delivery
//
// Kafka delivers at least once; the database sees each comment exactly once
// because the document _id is the comment id and a duplicate-key error on
// redelivery counts as "already stored" (package store). The offset of a
// record is committed only after the record is durable: inserted (or found
// already there) or acknowledged by the dead-letter topic. Whatever happens
// between a store and its commit (crash, rebalance, lost session, failed
// commit) is redelivered later and skipped as a duplicate.
//
// Failures that can heal (MongoDB down or any write error other than a
// duplicate key, the registry unavailable, the dead-letter topic not
// accepting writes) are retried with exponential backoff and jitter; nothing
// is committed meanwhile, the matching readiness check fails, and it all
// resumes by itself.
//
// # Rebalances
//
// The client uses BlockRebalanceOnPoll: from the moment PollRecords returns
// records until AllowRebalance, the group cannot revoke this member's
// partitions (revocation and loss callbacks wait). The loop calls
// AllowRebalance only when everything it has polled is stored (or
// dead-lettered) and committed, so at the moment a partition is revoked
// there is no polled-but-unfinished record of it anywhere in this process:
// no other member can work on a partition at the same time as this one, and
// OnPartitionsRevoked has nothing left to commit. When a rebalance wants to
// happen while the block is held, OnPartitionsCallbackBlocked tells the loop
// to stop polling, finish what it holds and allow it; the hold is otherwise
// bounded by maxHold, far below the group's rebalance timeout.
//
// # Pipeline
//
// Within one hold ("round"), the loop polls and decodes batch k+1 while a
// single writer goroutine dead-letters the poison of batch k and inserts
// its documents, and a committer goroutine commits the offsets of batch k-1.
// Batches are handed over on an unbuffered channel (and a one-slot one to
// the committer), so at most four batches are in memory beside the client's
// fetch buffer, which is bounded by the fetch limits (backpressure: when
// the writer is slow, polling stops, the buffer fills and fetching stops).
// Batches are stored, then committed, in order, so commits never go
// backwards and never cover an unstored record; a round ends only once its
// last batch is committed.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// Config tunes the consumer.
type Config struct {
	Topic string // the comments topic
	Group string // the consumer group

	BatchSize      int           // flush a batch at this many records...
	BatchTimeout   time.Duration // ...or this long after its first record, whichever first
	MaxPollRecords int           // at most this many records per poll
	FetchMaxBytes  int32         // per fetch request (memory bound: maxConcurrentFetches of them)

	// SessionTimeout is the group session timeout; 0 keeps franz-go's 45s.
	SessionTimeout time.Duration
	// ShutdownTimeout bounds finishing and committing the current batch
	// and leaving the group once Run's context is done.
	ShutdownTimeout time.Duration
	// MaxHold bounds how long the loop blocks rebalances; 0 means 5s.
	MaxHold time.Duration
	// LagInterval is how often the lag gauge is refreshed; 0 means 3s.
	LagInterval time.Duration
	// NewBackoff makes the retry backoff; nil means 100ms doubling to 5s,
	// with jitter.
	NewBackoff func() *backoff.Backoff
}

// Decoder decodes a framed record (schemas.Decoder).
type Decoder interface {
	Decode(ctx context.Context, b []byte) (schemas.Comment, int, error)
}

// Deps are what the consumer talks to.
type Deps struct {
	KafkaOpts    []kgo.Opt // connection options: brokers, TLS, SASL, logger
	Decoder      Decoder
	Store        *store.Store
	DLQ          *dlq.Writer
	Ready        *ops.Readiness        // gets the mongodb, kafka and registry checks
	Registerer   prometheus.Registerer // gets the metrics
	Log          *slog.Logger
	RegistryPing func(context.Context) error // readiness ping while idle; may be nil
}

const (
	// maxConcurrentFetches with FetchMaxBytes bounds the fetch buffer.
	maxConcurrentFetches = 3
	// insertTimeout bounds one InsertMany (a big batch on a busy
	// database); kafkaTimeout one dead-letter produce or offset commit.
	insertTimeout      = 30 * time.Second
	kafkaTimeout       = 10 * time.Second
	defaultMaxHold     = 5 * time.Second
	defaultLagInterval = 3 * time.Second
)

// Consumer is one member of the consumer group.
type Consumer struct {
	cfg   Config
	cl    *kgo.Client
	dec   Decoder
	store *store.Store
	dlq   *dlq.Writer
	log   *slog.Logger
	m     *metrics

	mongo, kafka, registry *health

	// rebalanceWanted is set when a rebalance waits for this member to
	// allow it; the loop then ends its hold as soon as it can.
	rebalanceWanted atomic.Bool

	// totals for the last log line
	consumed, stored, duplicates, deadLettered atomic.Int64
}

// New makes the group member. Run starts consuming.
func New(cfg Config, d Deps) (*Consumer, error) {
	if cfg.BatchSize < 1 || cfg.MaxPollRecords < 1 || cfg.BatchTimeout <= 0 || cfg.FetchMaxBytes < 1 {
		return nil, fmt.Errorf("ingest: batch size, poll records, batch timeout and fetch bytes must be positive")
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = defaultMaxHold
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = defaultLagInterval
	}
	if cfg.NewBackoff == nil {
		cfg.NewBackoff = func() *backoff.Backoff { return &backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second} }
	}
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingest: metrics: %w", err)
	}
	c := &Consumer{cfg: cfg, dec: d.Decoder, store: d.Store, dlq: d.DLQ, log: d.Log, m: m}

	opts := append([]kgo.Opt(nil), d.KafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		// A new group starts at the earliest record: nothing is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { c.rebalanceWanted.Store(true) }),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		// Memory: at most maxConcurrentFetches fetches of FetchMaxBytes
		// are buffered; a partition gives at most 1 MiB per fetch.
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(min(cfg.FetchMaxBytes, 1<<20)),
		kgo.MaxConcurrentFetches(maxConcurrentFetches),
		kgo.BrokerMaxReadBytes(max(cfg.FetchMaxBytes+(1<<20), 100<<20)),
	)
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout),
			kgo.HeartbeatInterval(min(3*time.Second, cfg.SessionTimeout/3)))
	}
	c.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("ingest: kafka consumer: %w", err)
	}

	c.mongo = &health{ping: d.Store.Ping}
	c.kafka = &health{ping: c.cl.Ping}
	c.registry = &health{ping: d.RegistryPing}
	d.Ready.Probe(depMongo, c.mongo.check)
	d.Ready.Probe(depKafka, c.kafka.check)
	d.Ready.Probe(depRegistry, c.registry.check)
	return c, nil
}

// Client is the group member's Kafka client (for tests and tools).
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Run consumes until ctx is done. Then it finishes the current batch
// (stores it, dead-letters its poison, commits), leaves the group and
// returns nil — all within about cfg.ShutdownTimeout; what it could not
// finish in time is not committed and will be redelivered. Run closes the
// client.
func (c *Consumer) Run(ctx context.Context) error {
	// work outlives ctx, so that the batch in hand can still be stored and
	// committed after a SIGTERM, by the shutdown budget minus what is
	// kept for leaving the group.
	leaveBudget := min(2*time.Second, c.cfg.ShutdownTimeout/4)
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var deadline atomic.Pointer[time.Timer]
	stopWatch := context.AfterFunc(ctx, func() {
		deadline.Store(time.AfterFunc(c.cfg.ShutdownTimeout-leaveBudget, cancelWork))
	})
	defer func() {
		stopWatch()
		if t := deadline.Load(); t != nil {
			t.Stop()
		}
	}()

	// The writer stores batches one after the other; the committer
	// commits each stored batch's offsets, in the same order, while the
	// writer already stores the next one.
	batches := make(chan *batch)
	stored := make(chan *batch, 1)
	writerDone, committerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		defer close(stored)
		abandoned := false
		for b := range batches {
			// Once a batch is abandoned (shutdown budget spent), no
			// later batch may be committed: its offsets would cover
			// the abandoned records of the same partitions.
			if !abandoned {
				abandoned = !c.persist(work, b)
			}
			b.abandoned = abandoned
			stored <- b
		}
	}()
	go func() {
		defer close(committerDone)
		for b := range stored {
			if !b.abandoned {
				c.commit(work, b)
			}
			close(b.done)
		}
	}()

	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		c.reportLag(lagCtx)
	}()

	c.log.Info("consuming", "topic", c.cfg.Topic, "group", c.cfg.Group,
		"batch_size", c.cfg.BatchSize, "batch_timeout", c.cfg.BatchTimeout.String())
	for {
		stop := c.round(ctx, work, batches)
		// Everything polled so far is stored (or dead-lettered) and
		// committed, or abandoned uncommitted at shutdown: a rebalance
		// may now revoke any partition.
		c.cl.AllowRebalance()
		if stop {
			break
		}
	}
	close(batches)
	<-writerDone
	<-committerDone
	stopLag()
	<-lagDone

	// Leave the group so that the partitions move at once rather than
	// after the session timeout, even when the batch used up its budget.
	leaveCtx, cancelLeave := context.WithTimeout(context.WithoutCancel(ctx), leaveBudget)
	if err := c.cl.LeaveGroupContext(leaveCtx); err != nil {
		c.log.Warn("leaving the consumer group failed; the partitions move after the session timeout", "err", err)
	}
	cancelLeave()
	c.cl.Close()
	c.log.Info("left the consumer group", "group", c.cfg.Group,
		"consumed", c.consumed.Load(), "stored", c.stored.Load(),
		"duplicates", c.duplicates.Load(), "dead_lettered", c.deadLettered.Load())
	return nil
}

// onRevoked runs when partitions move to another member. Because of
// BlockRebalanceOnPoll it only runs after AllowRebalance, when every record
// polled from them is stored and committed (see the package doc), so there
// is nothing to finish or commit here: it only forgets their lag.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	for topic, ps := range revoked {
		for _, p := range ps {
			c.m.dropLag(p)
		}
		if len(ps) > 0 {
			c.log.Info("partitions revoked", "topic", topic, "partitions", ps)
		}
	}
}

// onLost runs when the session is lost (the member was kicked out of the
// group, e.g. it held a rebalance past the rebalance timeout). Commits
// would fail now; anything stored but not committed is redelivered to the
// new owner and skipped as a duplicate there.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	for topic, ps := range lost {
		for _, p := range ps {
			c.m.dropLag(p)
		}
		if len(ps) > 0 {
			c.log.Warn("partitions lost", "topic", topic, "partitions", ps)
		}
	}
}

// batch is a run of polled records: the documents to insert, the poison to
// dead-letter, and per partition the last record, whose offset is committed
// once the batch is done.
type batch struct {
	opened  time.Time // when its first record was polled
	records int
	docs    []store.Document
	letters []dlq.Letter
	last    map[partition]*kgo.Record

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
			})
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
				return false
			}
		default:
			class := string(schemas.ClassOf(err))
			if class == "" {
				class = "unknown"
			}
			b.add(r)
			b.letters = append(b.letters, dlq.Letter{Record: r, Class: class, Err: err})
			c.log.Warn("poison record, dead-lettering", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "class", class, "err", err)
			return true
		}
	}
}

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
	if err := c.insert(work, b); err != nil {
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

// reportLag refreshes the lag gauge every LagInterval until ctx is done:
// per partition this member owns, the log end offset minus the group's
// committed offset (kadm's group lag). Computed from commits, it keeps
// growing while this member is stuck (an outage), which the position of the
// last poll would not show.
func (c *Consumer) reportLag(ctx context.Context) {
	adm := kadm.NewClient(c.cl)
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	shown := map[int32]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		member, _ := c.cl.GroupMetadata()
		if member == "" {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, c.cfg.LagInterval)
		lags, err := adm.Lag(qctx, c.cfg.Group)
		cancel()
		if err == nil {
			dl := lags[c.cfg.Group]
			err = dl.Error()
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("computing lag failed", "err", err)
			}
			continue
		}
		owned := map[int32]bool{}
		for p, l := range lags[c.cfg.Group].Lag[c.cfg.Topic] {
			if l.Member == nil || l.Member.MemberID != member || l.Err != nil {
				continue
			}
			owned[p] = true
			c.m.setLag(p, l.Lag)
		}
		for p := range shown {
			if !owned[p] {
				c.m.dropLag(p)
			}
		}
		shown = owned
	}
}
