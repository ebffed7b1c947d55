package stream

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/schemas"
)

// Subscription is one client's stream: a catch-up read from its resume
// position while it is behind the hub, then the hub's broadcast. It is
// used by one goroutine.
type Subscription struct {
	h      *Hub
	filter Filter
	pos    []int64 // after the last item returned (and the records skipped before it)

	pending []Item // read, not yet returned (catch-up)
	cu      *kgo.Client
	decode  func([]byte) (schemas.Comment, error)
	sub     *subscriber
}

// checkTimeout bounds Subscribe's look at the brokers.
const checkTimeout = 5 * time.Second

// Subscribe starts a subscription. from is the position to resume at (a
// token's); nil starts at the end: only comments the hub reads from now
// on. Offsets below a partition's start (deleted by retention) yield one
// gaps item first. ctx bounds the subscription's reads (the request's).
// It fails with an *UnavailableError while the hub cannot read the topic,
// or the brokers do not answer now (Kafka went away after the start: the
// hub keeps retrying, but a new stream would carry only heartbeats).
func (h *Hub) Subscribe(ctx context.Context, f Filter, from []int64) (*Subscription, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	err := h.Check(cctx)
	cancel()
	if err != nil {
		return nil, err
	}
	s := &Subscription{h: h, filter: f}
	if s.sub, s.pos, err = h.join(f, from); err != nil {
		return nil, err
	}
	if s.sub != nil { // at the end, or at or ahead of the hub
		return s, nil
	}
	start, err := listOffsets(ctx, h.o.KafkaOpts, h.o.Topic, true)
	if err != nil {
		return nil, &UnavailableError{Part: "kafka", Err: err}
	}
	s.pos = s.pos[:min(len(s.pos), len(start))]
	var gaps []Gap
	for p, o := range start {
		if s.pos[p] < o {
			gaps = append(gaps, Gap{Partition: int32(p), From: s.pos[p], To: o})
			s.pos[p] = o
		}
	}
	if len(gaps) > 0 {
		s.pending = append(s.pending, Item{Gaps: gaps, Pos: slices.Clone(s.pos)})
	}
	return s, s.startCatchUp(ctx)
}

func (s *Subscription) startCatchUp(ctx context.Context) error {
	cl, err := newReader(s.h.o.KafkaOpts, s.h.o.Topic, s.pos)
	if err != nil {
		return &UnavailableError{Part: "kafka", Err: err}
	}
	s.cu = cl
	s.decode = retryingDecoder(ctx, s.h.o.Decoder, s.h.o.Log, func(error) {})
	return nil
}

// CatchingUp reports whether the subscription still reads on its own.
func (s *Subscription) CatchingUp() bool { return s.cu != nil }

// Next returns the next item. It returns ErrIdle when nothing arrived for
// idle, ErrSlow when the hub dropped the subscriber for not keeping up,
// ErrClosed when the hub stopped, or ctx's error.
func (s *Subscription) Next(ctx context.Context, idle time.Duration) (Item, error) {
	deadline := time.Now().Add(idle)
	for {
		if len(s.pending) > 0 {
			it := s.pending[0]
			s.pending = s.pending[1:]
			return it, nil
		}
		if s.sub != nil {
			return s.nextLive(ctx, idle)
		}
		// Join the broadcast as soon as the hub has read nothing past us.
		sub, _, err := s.h.join(s.filter, s.pos)
		if err != nil {
			return Item{}, err
		}
		if sub != nil {
			s.sub = sub
			s.cu.Close()
			s.cu = nil
			continue
		}
		if time.Now().After(deadline) { // reading records of no interest: time for a heartbeat
			return Item{}, ErrIdle
		}
		if err := s.readCatchUp(ctx, idle); err != nil {
			return Item{}, err
		}
	}
}

func (s *Subscription) nextLive(ctx context.Context, idle time.Duration) (Item, error) {
	t := time.NewTimer(idle)
	defer t.Stop()
	select {
	case ev, ok := <-s.sub.ch:
		if !ok {
			return Item{}, s.sub.err
		}
		if ev.Gaps != nil { // its Pos is this subscriber's already
			s.pos = ev.Pos
			return Item{Gaps: ev.Gaps, Pos: ev.Pos}, nil
		}
		s.pos = s.sub.ahead(ev.Pos)
		return Item{Event: ev, Pos: s.pos}, nil
	case <-t.C:
		return Item{}, ErrIdle
	case <-ctx.Done():
		return Item{}, ctx.Err()
	}
}

// readCatchUp reads one fetch of the catch-up client into pending.
func (s *Subscription) readCatchUp(ctx context.Context, idle time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, idle)
	unwatch := context.AfterFunc(s.h.stopped, cancel) // the hub's shutdown ends the wait too
	fetches := s.cu.PollFetches(pctx)
	unwatch()
	cancel()
	if s.h.stopped.Err() != nil {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if fetches.IsClientClosed() {
		return ErrClosed
	}
	var idled bool
	behind := outOfRange(fetches, func(_ int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) {
			idled = true
			return
		}
		s.h.o.Log.WarnContext(ctx, "stream: catch-up fetch", "err", err)
	})
	fetches.EachRecord(func(r *kgo.Record) {
		if int(r.Partition) < len(s.pos) && r.Offset < s.pos[r.Partition] {
			return // already had it
		}
		ev, c, err := decodeEvent(s.decode, r)
		if err != nil && ctx.Err() != nil {
			return
		}
		s.pos = advance(s.pos, r.Partition, r.Offset) // s.pos is the catch-up's own: items get copies
		if err != nil {
			s.h.skip(r, err)
			return
		}
		if !s.filter.Match(ev) {
			return // not rendered: most of a filtered stream's backlog
		}
		ev.render(c, r)
		ev.Pos = slices.Clone(s.pos)
		s.pending = append(s.pending, Item{Event: ev, Pos: ev.Pos})
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(behind) > 0 {
		if err := s.catchUpRetention(ctx, behind); err != nil {
			return err
		}
	}
	if idled && len(s.pending) == 0 {
		return ErrIdle
	}
	return nil
}

// catchUpRetention moves the catch-up reader past the records retention
// deleted before it read them in partitions ps, with a gaps item. If the
// offsets cannot be listed now, the next fetch fails the same way and this
// is tried again.
func (s *Subscription) catchUpRetention(ctx context.Context, ps []int32) error {
	gaps, err := realign(ctx, s.h.o.Log, s.cu, s.h.o.Topic, s.pos, ps)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.h.o.Log.WarnContext(ctx, "stream: catch-up: cannot list the offsets of partitions read out of range; retrying", "partitions", ps, "err", err)
		return nil
	}
	if len(gaps) == 0 {
		return nil
	}
	s.h.fellBehind(ctx, "catch-up", gaps)
	for _, g := range gaps {
		s.pos[g.Partition] = g.To
	}
	s.pending = append(s.pending, Item{Gaps: gaps, Pos: slices.Clone(s.pos)})
	return nil
}

// Position is the subscription's position for a heartbeat, when it has
// nothing pending (ok false otherwise): resuming from it loses nothing.
func (s *Subscription) Position() ([]int64, bool) {
	if len(s.pending) > 0 {
		return nil, false
	}
	if s.sub == nil {
		return slices.Clone(s.pos), true
	}
	return s.h.idlePos(s.sub)
}

// Close ends the subscription.
func (s *Subscription) Close() {
	if s.cu != nil {
		s.cu.Close()
		s.cu = nil
	}
	if s.sub != nil {
		s.h.leave(s.sub)
	}
}
