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
// accepting writes) go through one retry path (retry): retried with
// exponential backoff and jitter, nothing committed meanwhile, the matching
// readiness check failing. A round retries only while it may hold its
// partitions; see Outages.
//
// # Rebalances
//
// The client uses BlockRebalanceOnPoll: from the moment PollRecords returns
// records until AllowRebalance, the group cannot revoke this member's
// partitions (revocation and loss callbacks wait). The loop calls
// AllowRebalance only when everything it has polled is stored (or
// dead-lettered) and committed, or dropped and its partition rewound (see
// Outages), so at the moment a partition is revoked there is no
// polled-but-unfinished record of it anywhere in this process: no other
// member can work on a partition at the same time as this one, and
// OnPartitionsRevoked has nothing left to commit. When a rebalance wants to
// happen while the block is held, OnPartitionsCallbackBlocked tells the loop
// to stop polling, finish what it holds and allow it; the hold is otherwise
// bounded by MaxHold (5s), far below the group's rebalance timeout, set
// explicitly (RebalanceTimeout, 60s) to cover MaxHold plus one write attempt
// (30s) and one commit (10s): an attempt already running is never cut short.
//
// # Outages
//
// While a dependency fails, a round gives up once a rebalance waits for this
// member or the round has held its partitions for MaxHold: the retry in
// progress is cut short (a retry, not a first attempt), the batches of the
// round that are not durable are dropped, and their partitions are rewound
// with SetOffsets to the first record not durable, which is the last
// committed offset (with the cooperative balancer a partition that stays
// here would otherwise keep its in-memory position past the dropped
// records). Then the loop allows the rebalance, pauses fetching and pings
// the dependency with backoff, and resumes fetching once it answers. A long
// outage therefore delays a rebalance by about MaxHold, not by the group's
// rebalance timeout. A write the driver had already sent when the round
// gave up may still be applied after the partition moved: the new owner then
// skips it as a duplicate.
//
// # Static membership
//
// With Config.InstanceID the member is static. A crash leaves it in the
// group: its partitions stay assigned to it until its session times out or
// a process with the same instance id joins, which takes them back without
// a rebalance. A stop (Run's context done, i.e. SIGTERM) is deliberate: Run
// leaves the group after its last commit by sending LeaveGroup with the
// instance id itself (franz-go's LeaveGroup does not, for a static member),
// so the partitions move to the other members at once.
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
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/platform/telemetry"
	"github.com/commentflow/commentflow/schemas"
)

// Config tunes the consumer.
type Config struct {
	Topic string // the comments topic
	Group string // the consumer group
	// InstanceID, if set, makes this member static (kgo.InstanceID): a
	// restart with the same id takes its partitions back without a
	// rebalance; after a crash they wait for the session timeout (or the
	// restart), while Run's end (a deliberate stop) leaves the group so
	// they move at once. See Static membership in the package doc.
	InstanceID string

	BatchSize      int           // flush a batch at this many records...
	BatchTimeout   time.Duration // ...or this long after its first record, whichever first
	MaxPollRecords int           // at most this many records per poll
	FetchMaxBytes  int32         // per fetch request (memory bound: maxConcurrentFetches of them)

	// SessionTimeout is the group session timeout; 0 keeps franz-go's 45s.
	SessionTimeout time.Duration
	// ShutdownTimeout bounds finishing and committing the current batch
	// and leaving the group once Run's context is done.
	ShutdownTimeout time.Duration
	// MaxHold bounds how long the loop blocks rebalances while it polls,
	// and how long a round retries a failing dependency before it gives
	// up; 0 means 5s. It must stay well below RebalanceTimeout.
	MaxHold time.Duration
	// RebalanceTimeout is the group's rebalance timeout: how long the
	// group waits for every member to rejoin; 0 means 60s. It must cover
	// MaxHold plus one write attempt (30s) and one commit (10s).
	RebalanceTimeout time.Duration
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

// Store is where documents go (*store.Store): Insert reports what it
// stored and what is still pending after an error; Ping answers the
// readiness check and tells a paused round when to fetch again.
type Store interface {
	Insert(ctx context.Context, docs []store.Document) (store.Result, []store.Document, error)
	Ping(ctx context.Context) error
}

// Deps are what the consumer talks to.
type Deps struct {
	KafkaOpts    []kgo.Opt // connection options: brokers, TLS, SASL, logger
	Decoder      Decoder
	Store        Store
	DLQ          *dlq.Writer
	Ready        *ops.Readiness        // gets the mongodb, kafka and registry checks
	Registerer   prometheus.Registerer // gets the metrics
	Log          *slog.Logger
	RegistryPing func(context.Context) error // readiness ping while idle; may be nil
	Telemetry    *telemetry.Telemetry        // nil: tracing off
}

const (
	// maxConcurrentFetches with FetchMaxBytes bounds the fetch buffer.
	maxConcurrentFetches = 3
	// insertTimeout bounds one InsertMany (a big batch on a busy
	// database); kafkaTimeout one dead-letter produce or offset commit.
	insertTimeout      = 30 * time.Second
	kafkaTimeout       = 10 * time.Second
	defaultMaxHold     = 5 * time.Second
	defaultRebalance   = 60 * time.Second
	defaultLagInterval = 3 * time.Second
)

// Consumer is one member of the consumer group.
type Consumer struct {
	cfg   Config
	cl    *kgo.Client
	dec   Decoder
	store Store
	dlq   *dlq.Writer
	log   *slog.Logger
	m     *metrics
	tr    *tracing // nil: tracing off

	mongo, kafka, registry *health

	// rebalanceWanted is set when a rebalance waits for this member to
	// allow it; the loop then ends its hold as soon as it can.
	rebalanceWanted atomic.Bool
	// hold is the current round's; a waiting rebalance makes it give up
	// retrying.
	hold atomic.Pointer[hold]

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
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = defaultRebalance
	}
	if cfg.MaxHold+insertTimeout+kafkaTimeout > cfg.RebalanceTimeout {
		return nil, fmt.Errorf("ingest: rebalance timeout %s must cover MaxHold %s plus one write (%s) and one commit (%s)",
			cfg.RebalanceTimeout, cfg.MaxHold, insertTimeout, kafkaTimeout)
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
	// The insert span names the database and collection when the store
	// can tell them (store.Store does; a benchmark's null store need not).
	var db, coll string
	if ns, ok := d.Store.(interface{ Namespace() (string, string) }); ok {
		db, coll = ns.Namespace()
	}
	c.tr = newTracing(d.Telemetry, cfg.Group, db, coll)

	opts := append([]kgo.Opt(nil), d.KafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		// A new group starts at the earliest record: nothing is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			c.rebalanceWanted.Store(true)
			if h := c.hold.Load(); h != nil {
				h.cancel() // stop retrying a failing dependency
			}
		}),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		// Memory: at most maxConcurrentFetches fetches of FetchMaxBytes
		// are buffered; a partition gives at most 1 MiB per fetch.
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(min(cfg.FetchMaxBytes, 1<<20)),
		kgo.MaxConcurrentFetches(maxConcurrentFetches),
		kgo.BrokerMaxReadBytes(max(cfg.FetchMaxBytes+(1<<20), 100<<20)),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	opts = append(opts, kafkaOpts(d.Telemetry, cfg.Group)...)
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

// Run consumes until ctx is done. Then it finishes the current batch
// (stores it, dead-letters its poison, commits), leaves the group and
// returns nil — all within nine tenths of cfg.ShutdownTimeout, whatever
// the group is doing (a join the broker holds for the rebalance timeout
// included: the client is then left to the process's exit); what it could
// not finish in time is not committed and will be redelivered. Run closes
// the client.
func (c *Consumer) Run(ctx context.Context) error {
	// work outlives ctx, so that the batch in hand can still be stored and
	// committed after a SIGTERM, by the shutdown budget minus what is
	// kept for leaving the group.
	leaveBudget := min(2*time.Second, c.cfg.ShutdownTimeout/4)
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var deadline atomic.Pointer[time.Timer]
	// closeBy is when Run must be done closing the client, leaving the
	// service a tenth of the budget for the rest of its teardown.
	var closeBy atomic.Pointer[time.Time]
	stopWatch := context.AfterFunc(ctx, func() {
		by := time.Now().Add(c.cfg.ShutdownTimeout * 9 / 10)
		closeBy.Store(&by)
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
		for b := range batches {
			// Once a batch of a round is dropped (the round gave up
			// on a dependency, or the shutdown budget is spent), no
			// later batch of the round may be stored: its offsets
			// would cover the dropped records of the same partitions.
			if b.hold.isAbandoned() || !c.persist(work, b) {
				b.hold.abandon(b)
				b.abandoned = true
			}
			stored <- b
		}
	}()
	go func() {
		defer close(committerDone)
		for b := range stored {
			if !b.abandoned {
				c.commit(work, b)
			}
			c.batchDone(b, !b.abandoned)
			b.endSpans()
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
		stop, failed := c.round(ctx, work, batches)
		// Everything polled so far is stored (or dead-lettered) and
		// committed, or dropped uncommitted and its partition rewound
		// (the round gave up, or shutdown): a rebalance may now revoke
		// any partition.
		c.cl.AllowRebalance()
		if stop {
			break
		}
		if failed != "" {
			c.waitHealed(ctx, failed)
		}
	}
	close(batches)
	<-writerDone
	<-committerDone
	stopLag()
	<-lagDone

	// Leave the group so that the partitions move at once rather than
	// after the session timeout, even when the batch used up its budget.
	// A stop is deliberate (SIGTERM: a scale-down, a redeploy), so a
	// static member leaves too; franz-go's leave does not send LeaveGroup
	// for a static member, so it is sent here by instance id. Only a
	// crash leaves a static member's partitions waiting.
	leaveCtx, cancelLeave := context.WithTimeout(context.WithoutCancel(ctx), leaveBudget)
	memberID, _ := c.cl.GroupMetadata()
	err := c.cl.LeaveGroupContext(leaveCtx)
	if err == nil && c.cfg.InstanceID != "" {
		err = c.leaveStatic(leaveCtx, memberID)
	}
	if err != nil {
		c.log.Warn("leaving the consumer group failed; the partitions move after the session timeout", "err", err)
	}
	cancelLeave()
	// Close waits for a group join in flight, which the broker may hold
	// for the whole rebalance timeout: past the shutdown budget, the
	// client is left to the process's exit.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.cl.Close()
	}()
	if by := closeBy.Load(); by != nil {
		select {
		case <-closed:
		case <-time.After(time.Until(*by)):
			c.log.Warn("the Kafka client did not close within the shutdown budget (a group join in flight); leaving it to the exit")
		}
	} else {
		<-closed
	}
	c.log.Info("left the consumer group", "group", c.cfg.Group,
		"consumed", c.consumed.Load(), "stored", c.stored.Load(),
		"duplicates", c.duplicates.Load(), "dead_lettered", c.deadLettered.Load())
	return nil
}

// leaveStatic removes this static member from the group (LeaveGroup v3+
// naming its instance id, as an admin's removal of a static member does).
func (c *Consumer) leaveStatic(ctx context.Context, memberID string) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = c.cfg.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = memberID
	m.InstanceID = &c.cfg.InstanceID
	m.Reason = kmsg.StringPtr("static member stopped deliberately")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return fmt.Errorf("leave group as static member %q: %w", c.cfg.InstanceID, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("leave group as static member %q: %w", c.cfg.InstanceID, err)
	}
	for _, r := range resp.Members {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("leave group as static member %q: %w", c.cfg.InstanceID, err)
		}
	}
	return nil
}

// onRevoked runs when partitions move to another member. Because of
// BlockRebalanceOnPoll it only runs after AllowRebalance, when every record
// polled from them is stored and committed (see the package doc), so there
// is nothing to finish or commit here: it only forgets their lag.
func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.forget(ctx, revoked, slog.LevelInfo, "partitions revoked")
}

// onLost runs when the session is lost (the member was kicked out of the
// group, e.g. it held a rebalance past the rebalance timeout). Commits
// would fail now; anything stored but not committed is redelivered to the
// new owner and skipped as a duplicate there.
func (c *Consumer) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.forget(ctx, lost, slog.LevelWarn, "partitions lost")
}

// forget drops the lag of partitions this member no longer owns, and logs
// them at level with msg.
func (c *Consumer) forget(ctx context.Context, gone map[string][]int32, level slog.Level, msg string) {
	for topic, ps := range gone {
		for _, p := range ps {
			c.m.dropLag(p)
		}
		if len(ps) > 0 {
			c.log.Log(ctx, level, msg, "topic", topic, "partitions", ps)
		}
	}
}
