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
	// Registerer receives the hub's metric (poison records skipped); nil
	// registers nowhere.
	Registerer prometheus.Registerer
}

// Hub is the one reader of the topic per process, fanning out to
// subscribers.
type Hub struct {
	o       Options
	skipped *prometheus.CounterVec

	mu     sync.Mutex
	state  error   // nil when live
	pos    []int64 // next offset of every partition, once live
	subs   map[*subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close
	cl     *kgo.Client   // the reading client, while it reads
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
		subs:  map[*subscriber]struct{}{}, done: make(chan struct{}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commentflow_gateway_stream_records_skipped_total",
			Help: "Records of the comments topic the stream skipped because they cannot be decoded (poison; the consumer dead-letters them), by class.",
		}, []string{"class"}),
	}
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
		end, err := h.endOffsets(ctx)
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

// endOffsets lists the end of every partition of the topic.
func (h *Hub) endOffsets(ctx context.Context) ([]int64, error) {
	offs, _, err := listOffsets(ctx, h.o.KafkaOpts, h.o.Topic, false)
	return offs, err
}

// listOffsets lists the start (or end) offset of every partition of topic
// with a short-lived client, and returns them with the partition count.
func listOffsets(ctx context.Context, opts []kgo.Opt, topic string, start bool) ([]int64, int, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if start {
		list = adm.ListStartOffsets
	}
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, 0, err
	}
	if err := listed.Error(); err != nil {
		return nil, 0, err
	}
	ps := listed[topic]
	if len(ps) == 0 {
		return nil, 0, fmt.Errorf("topic %s does not exist", topic)
	}
	offs := make([]int64, len(ps))
	for p, o := range ps {
		if int(p) >= len(offs) || p < 0 {
			return nil, 0, fmt.Errorf("topic %s: unexpected partition %d", topic, p)
		}
		offs[p] = o.Offset
	}
	return offs, len(ps), nil
}

// consume reads from end until ctx ends.
func (h *Hub) consume(ctx context.Context, end []int64) {
	parts := make(map[int32]kgo.Offset, len(end))
	for p, o := range end {
		parts[int32(p)] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(append(slices.Clone(h.o.KafkaOpts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{h.o.Topic: parts}))...)
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
		fetches.EachError(func(t string, p int32, err error) {
			h.o.Log.WarnContext(ctx, "stream: fetch", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			ev, err := event(decode, r)
			if err != nil && ctx.Err() != nil {
				return // shutting down; the record was not delivered
			}
			h.publish(r, ev, err)
		})
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
	if !h.closed {
		close(h.done)
	}
	h.closed = true
	h.state = &UnavailableError{Part: "kafka", Err: errors.New("the gateway is shutting down")}
	for s := range h.subs {
		h.drop(s, ErrClosed)
	}
}

// join registers a subscriber at pos when the hub has read no further than
// pos in any partition; it returns nil when the subscriber must read more
// first (or an error when the hub cannot take it).
func (h *Hub) join(f Filter, pos []int64) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.state != nil && h.pos == nil {
		return nil, h.state
	}
	if !atLeast(pos, h.pos) {
		return nil, nil
	}
	s := &subscriber{filter: f, from: slices.Clone(pos), ch: make(chan *Event, h.o.Buffer)}
	h.subs[s] = struct{}{}
	return s, nil
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
	pos := slices.Clone(h.pos)
	for p := range min(len(pos), len(s.from)) { // s may start ahead of the hub
		pos[p] = max(pos[p], s.from[p])
	}
	return pos, true
}

// live returns the hub's position, or why it cannot serve.
func (h *Hub) live() ([]int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.pos == nil {
		return nil, h.state
	}
	return slices.Clone(h.pos), nil
}

// SkippedCounter is the counter of poison records skipped of class (for
// tests).
func (h *Hub) SkippedCounter(class string) prometheus.Counter {
	return h.skipped.WithLabelValues(class)
}

// Position is the hub's position (nil until it reads the topic).
func (h *Hub) Position() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pos)
}
