package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/schemas"
)

// Options configure a Hub.
type Options struct {
	// KafkaOpts connect to the brokers (seeds, TLS, SASL, hooks); the hub
	// adds the consuming options. No group is ever set.
	KafkaOpts []kgo.Opt
	// Topic to read.
	Topic string
	// Decoder decodes the records (required).
	Decoder *schemas.Decoder
	// Buffer is each subscriber's buffer, in events; 0 means 256.
	Buffer int
	// Log; nil discards.
	Log *slog.Logger
	// Registerer receives the hub's metric (records skipped: poison, or
	// deleted by retention before the gateway read them); nil registers
	// nowhere.
	Registerer prometheus.Registerer
}

// Hub is the one reader of the topic per process, fanning out to
// subscribers.
type Hub struct {
	o       Options
	skipped *prometheus.CounterVec

	mu    sync.Mutex
	state error   // nil when live
	pos   []int64 // next offset of every partition, once live
	subs  map[*subscriber]struct{}
	// stopped ends when the hub stops (close): the catch-ups' reads end
	// with it. Never done while the hub reads.
	stopped context.Context
	stop    context.CancelFunc
	cl      *kgo.Client // the reading client, while it reads
}

type subscriber struct {
	filter Filter
	from   []int64 // events below this position were delivered by the catch-up
	ch     chan *Event
	err    error // why ch was closed
}

// NewHub returns a hub; Run reads.
func NewHub(o Options) (*Hub, error) {
	if o.Decoder == nil {
		return nil, errors.New("stream: no decoder")
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		o:     o,
		state: &UnavailableError{Part: "kafka", Err: errors.New("not connected yet")},
		subs:  map[*subscriber]struct{}{},
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commentflow_gateway_stream_records_skipped_total",
			Help: "Records of the comments topic the stream skipped, by class: a poison class (cannot be decoded; the consumer dead-letters them), or retention (deleted before the gateway's reader got to them; the streams are sent a skipped event).",
		}, []string{"class"}),
	}
	h.stopped, h.stop = context.WithCancel(context.Background())
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.skipped); err != nil {
			return nil, fmt.Errorf("stream: register metrics: %w", err)
		}
	}
	return h, nil
}

func (h *Hub) skip(r *kgo.Record, err error) {
	h.o.Log.Warn("stream: skipping a record that cannot be decoded (the consumer dead-letters it)",
		"partition", r.Partition, "offset", r.Offset, "err", err)
	h.skipped.WithLabelValues(string(schemas.ClassOf(err))).Inc()
}

// State is nil while the hub reads the topic, else an *UnavailableError
// naming the part that is down.
func (h *Hub) State() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// Check is State, and while the hub reads, also whether the brokers answer
// now (a ping): for readiness, which should say so when Kafka goes away
// after the start (the reader itself keeps retrying).
func (h *Hub) Check(ctx context.Context) error {
	h.mu.Lock()
	state, cl := h.state, h.cl
	h.mu.Unlock()
	if state != nil || cl == nil {
		return state
	}
	if err := cl.Ping(ctx); err != nil {
		return &UnavailableError{Part: "kafka", Err: err}
	}
	return nil
}

func (h *Hub) setState(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = err
}

// Subscribers is the number of live subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Run reads the topic until ctx ends, then drops every subscriber with
// ErrClosed. While Kafka cannot be reached it retries with backoff and
// State says so.
func (h *Hub) Run(ctx context.Context) error {
	defer h.close()
	b := backoff.Default()
	for ctx.Err() == nil {
		end, err := listOffsets(ctx, h.o.KafkaOpts, h.o.Topic, false)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			h.setState(&UnavailableError{Part: "kafka", Err: err})
			h.o.Log.WarnContext(ctx, "stream: kafka is unavailable; retrying", "err", err, "attempt", b.Attempts()+1)
			_ = b.Wait(ctx)
			continue
		}
		b.Reset()
		h.consume(ctx, end) // returns when ctx ends, or when it could not start
		_ = b.Wait(ctx)
	}
	return nil
}

// listOffsets lists the start (or end) offset of every partition of topic
// with a short-lived client, by partition.
func listOffsets(ctx context.Context, opts []kgo.Opt, topic string, start bool) ([]int64, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return listOffsetsWith(ctx, cl, topic, start)
}

// listOffsetsWith is listOffsets with the client cl.
func listOffsetsWith(ctx context.Context, cl *kgo.Client, topic string, start bool) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if start {
		list = adm.ListStartOffsets
	}
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := listed.Error(); err != nil {
		return nil, err
	}
	ps := listed[topic]
	if len(ps) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	offs := make([]int64, len(ps))
	for p, o := range ps {
		if int(p) >= len(offs) || p < 0 {
			return nil, fmt.Errorf("topic %s: unexpected partition %d", topic, p)
		}
		offs[p] = o.Offset
	}
	return offs, nil
}

// newReader returns a client reading topic directly from pos. An
// OffsetOutOfRange (the reader fell behind retention) is not reset
// silently but returned in the fetches, for realign.
func newReader(opts []kgo.Opt, topic string, pos []int64) (*kgo.Client, error) {
	parts := make(map[int32]kgo.Offset, len(pos))
	for p, o := range pos {
		parts[int32(p)] = kgo.NewOffset().At(o)
	}
	return kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()))...)
}

// outOfRange returns the partitions of fetches that answered
// OffsetOutOfRange, and passes every other error to other.
func outOfRange(fetches kgo.Fetches, other func(p int32, err error)) []int32 {
	var ps []int32
	fetches.EachError(func(_ string, p int32, err error) {
		if errors.Is(err, kerr.OffsetOutOfRange) {
			ps = append(ps, p)
			return
		}
		other(p, err)
	})
	return ps
}

// realign moves a reader of topic (cl, from newReader) at pos whose
// partitions ps answered OffsetOutOfRange back into each partition's log,
// and returns the gaps, by partition: where it fell below a partition's
// start, it resumes at the start, and the records between (deleted by
// retention before it read them) are a gap. Where the log now ends before
// pos (the broker lost records: an unclean leader election, a recreated
// topic), it resumes at the end with a warning, as franz-go's own reset
// does, and the offsets read again are delivered as they come. The caller
// moves pos past the gaps.
func realign(ctx context.Context, log *slog.Logger, cl *kgo.Client, topic string, pos []int64, ps []int32) ([]Gap, error) {
	start, err := listOffsetsWith(ctx, cl, topic, true)
	if err != nil {
		return nil, err
	}
	end, err := listOffsetsWith(ctx, cl, topic, false)
	if err != nil {
		return nil, err
	}
	var gaps []Gap
	set := map[int32]kgo.EpochOffset{}
	for _, p := range ps {
		if int(p) >= min(len(pos), len(start), len(end)) {
			continue // not a partition the reader was given
		}
		o := min(max(pos[p], start[p]), end[p])
		set[p] = kgo.EpochOffset{Offset: o, Epoch: -1}
		switch {
		case o > pos[p]:
			gaps = append(gaps, Gap{Partition: p, From: pos[p], To: o})
		case o < pos[p]:
			log.WarnContext(ctx, "stream: the partition's log ends before the reader's position (the broker lost records); reading on from its end",
				"partition", p, "position", pos[p], "end", o)
		}
	}
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: set})
	slices.SortFunc(gaps, func(a, b Gap) int { return int(a.Partition - b.Partition) })
	return gaps, nil
}

// fellBehind logs and counts gaps that reader (the hub, or a catch-up)
// skipped because retention deleted the records before it read them.
func (h *Hub) fellBehind(ctx context.Context, reader string, gaps []Gap) {
	n := records(gaps)
	h.skipped.WithLabelValues("retention").Add(float64(n))
	h.o.Log.WarnContext(ctx, "stream: retention deleted records before the gateway read them; the streams are sent a skipped event",
		"reader", reader, "records", n, "gaps", gaps)
}

// consume reads from end until ctx ends.
func (h *Hub) consume(ctx context.Context, end []int64) {
	cl, err := newReader(h.o.KafkaOpts, h.o.Topic, end)
	if err != nil {
		h.setState(&UnavailableError{Part: "kafka", Err: err})
		return
	}
	defer cl.Close()
	h.mu.Lock()
	h.pos, h.state, h.cl = slices.Clone(end), nil, cl
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.cl = nil
		h.mu.Unlock()
	}()
	h.o.Log.InfoContext(ctx, "stream: reading the topic", "topic", h.o.Topic, "from", end)
	decode := h.decodeFunc(ctx)
	for {
		fetches := cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		behind := outOfRange(fetches, func(p int32, err error) {
			h.o.Log.WarnContext(ctx, "stream: fetch", "topic", h.o.Topic, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			ev, err := event(decode, r)
			if err != nil && ctx.Err() != nil {
				return // shutting down; the record was not delivered
			}
			h.publish(r, ev, err)
		})
		if len(behind) > 0 {
			h.catchUpRetention(ctx, cl, behind)
		}
	}
}

// catchUpRetention moves the hub past the records retention deleted before
// it read them in partitions ps, and tells every subscriber that had not
// got that far: whatever its filter, since a gap may hold any post's
// comments. If the offsets cannot be listed now, the next fetch fails the
// same way and this is tried again.
func (h *Hub) catchUpRetention(ctx context.Context, cl *kgo.Client, ps []int32) {
	gaps, err := realign(ctx, h.o.Log, cl, h.o.Topic, h.Position(), ps) // only this goroutine moves h.pos
	if err != nil {
		if ctx.Err() == nil {
			h.o.Log.WarnContext(ctx, "stream: cannot list the offsets of partitions read out of range; retrying", "partitions", ps, "err", err)
		}
		return
	}
	if len(gaps) == 0 {
		return
	}
	h.fellBehind(ctx, "hub", gaps)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range gaps {
		h.pos[g.Partition] = g.To
	}
	for s := range h.subs {
		var mine []Gap
		for _, g := range gaps {
			if int(g.Partition) < len(s.from) {
				g.From = max(g.From, s.from[g.Partition]) // s may start ahead of the hub
			}
			if g.From < g.To {
				mine = append(mine, g)
			}
		}
		if len(mine) == 0 {
			continue
		}
		select {
		case s.ch <- &Event{Gaps: mine, Pos: s.position(h.pos)}:
		default:
			h.drop(s, ErrSlow)
		}
	}
}

// decodeFunc decodes with the registry, waiting out a registry outage
// (the record is retried, never skipped for it) until ctx ends.
func (h *Hub) decodeFunc(ctx context.Context) func([]byte) (schemas.Comment, error) {
	return retryingDecoder(ctx, h.o.Decoder, h.o.Log, func(err error) {
		if err == nil {
			h.setState(nil)
			return
		}
		h.setState(&UnavailableError{Part: "schema registry", Err: err})
	})
}

// retryingDecoder decodes, retrying with backoff while the registry is
// unavailable; outage is told of the outage and of its end (nil).
func retryingDecoder(ctx context.Context, d *schemas.Decoder, log *slog.Logger, outage func(error)) func([]byte) (schemas.Comment, error) {
	return func(b []byte) (schemas.Comment, error) {
		bo := backoff.Default()
		for {
			c, _, err := d.Decode(ctx, b)
			if !schemas.Retryable(err) || ctx.Err() != nil {
				if bo.Attempts() > 0 {
					outage(nil)
				}
				return c, err
			}
			if bo.Attempts() == 0 {
				outage(err)
				log.WarnContext(ctx, "stream: schema registry unavailable; waiting", "err", err)
			}
			_ = bo.Wait(ctx)
		}
	}
}

// publish advances the position past r and hands its event (nil when it
// was poison) to every subscriber it matches.
func (h *Hub) publish(r *kgo.Record, ev *Event, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = advance(h.pos, r.Partition, r.Offset)
	if err != nil {
		h.skip(r, err)
		return
	}
	ev.Pos = slices.Clone(h.pos)
	for s := range h.subs {
		if int(ev.Partition) < len(s.from) && ev.Offset < s.from[ev.Partition] || !s.filter.Match(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			h.drop(s, ErrSlow)
		}
	}
}

// drop removes s; h.mu is held.
func (h *Hub) drop(s *subscriber, err error) {
	delete(h.subs, s)
	s.err = err
	close(s.ch)
}

func (h *Hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop()
	h.state = &UnavailableError{Part: "kafka", Err: errors.New("the gateway is shutting down")}
	for s := range h.subs {
		h.drop(s, ErrClosed)
	}
}

// join registers a subscriber at from when the hub has read no further
// than from in any partition, or at the hub's position now when from is
// nil. It returns the subscriber's position (from, with a 0 for each
// partition added since), and a nil subscriber when it must read up to the
// hub first; or an error when the hub cannot take it.
func (h *Hub) join(f Filter, from []int64) (*subscriber, []int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped.Err() != nil {
		return nil, nil, ErrClosed
	}
	if h.pos == nil { // not reading yet: h.state says why
		return nil, nil, h.state
	}
	pos := slices.Clone(h.pos)
	if from != nil {
		pos = slices.Clone(from)
		for len(pos) < len(h.pos) {
			pos = append(pos, 0)
		}
	}
	if !atLeast(pos, h.pos) {
		return nil, pos, nil
	}
	s := &subscriber{filter: f, from: slices.Clone(pos), ch: make(chan *Event, h.o.Buffer)}
	h.subs[s] = struct{}{}
	return s, pos, nil
}

// leave removes s if it is still registered.
func (h *Hub) leave(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		h.drop(s, ErrClosed)
	}
}

// idlePos is s's position when it has nothing buffered: the hub's, since
// every record the hub read was delivered to s or did not match it. ok is
// false while s has events buffered.
func (h *Hub) idlePos(s *subscriber) ([]int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(s.ch) > 0 || s.err != nil {
		return nil, false
	}
	return s.position(h.pos), true
}

// ahead is the position after a comment event whose (the hub's) position
// is pos: pos itself, shared and not copied, unless s started ahead of the
// hub in some partition (a resume token from a replica whose reader was
// further on), where s's start is kept, so that its position never goes
// back.
func (s *subscriber) ahead(pos []int64) []int64 {
	for p := range min(len(pos), len(s.from)) {
		if s.from[p] > pos[p] {
			return s.position(pos)
		}
	}
	return pos
}

// position is s's position when the hub is at pos and s has nothing
// buffered: pos, or s.from where s started ahead of the hub.
func (s *subscriber) position(pos []int64) []int64 {
	pos = slices.Clone(pos)
	for p := range min(len(pos), len(s.from)) {
		pos[p] = max(pos[p], s.from[p])
	}
	return pos
}

// SkippedCounter is the counter of records skipped of class (a poison
// class, or "retention"; for tests).
func (h *Hub) SkippedCounter(class string) prometheus.Counter {
	return h.skipped.WithLabelValues(class)
}

// Position is the hub's position (nil until it reads the topic).
func (h *Hub) Position() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pos)
}
