package stream_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/gateway/internal/stream"
	"github.com/commentflow/commentflow/schemas"
	"github.com/commentflow/commentflow/schemas/names"
)

var posts = apitest.Posts

// fixture is a broker with the topic, a registry with the schema, a
// publisher and a running hub.
type fixture struct {
	kafka *kfake.Cluster
	pub   *apitest.Publisher
	hub   *stream.Hub
	reg   *prometheus.Registry
}

func newFixture(t *testing.T, buffer int, hubOpts ...kgo.Opt) *fixture {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(names.Partitions, names.Topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	srv := srfake.New()
	t.Cleanup(srv.Close)
	f := &fixture{kafka: kc, reg: prometheus.NewRegistry()}
	f.pub = apitest.NewPublisher(t, kc.ListenAddrs()[0], srv.URL())
	rc, err := sr.NewClient(sr.URLs(srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	f.hub, err = stream.NewHub(stream.Options{
		KafkaOpts: append([]kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...)}, hubOpts...), Topic: names.Topic,
		Decoder: schemas.NewDecoder(rc), Buffer: buffer, Registerer: f.reg,
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the hub to read the topic", func() bool { return f.hub.State() == nil })
	return f
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func subscribe(t *testing.T, h *stream.Hub, f stream.Filter, from []int64) *stream.Subscription {
	t.Helper()
	s, err := h.Subscribe(t.Context(), f, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// collect reads n comment items (skipping idle and gaps items).
func collect(t *testing.T, s *stream.Subscription, n int) []stream.Item {
	t.Helper()
	var out []stream.Item
	deadline := time.Now().Add(time.Minute)
	for len(out) < n {
		it, err := s.Next(t.Context(), 50*time.Millisecond)
		if errors.Is(err, stream.ErrIdle) {
			if time.Now().After(deadline) {
				t.Fatalf("got %d of %d items", len(out), n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("after %d of %d items: %v", len(out), n, err)
		}
		if it.Event != nil {
			out = append(out, it)
		}
	}
	return out
}

// quiet asserts that no further comment arrives for a while.
func quiet(t *testing.T, s *stream.Subscription) {
	t.Helper()
	for range 5 {
		it, err := s.Next(t.Context(), 50*time.Millisecond)
		if err == nil && it.Event != nil {
			t.Fatalf("unexpected extra comment at %d/%d", it.Event.Partition, it.Event.Offset)
		}
	}
}

func publishN(t *testing.T, p *apitest.Publisher, n int) []*kgo.Record {
	t.Helper()
	cs := make([]schemas.Comment, n)
	for i := range cs {
		cs[i] = apitest.Comment(posts[i%len(posts)], apitest.Names[i%2], i)
	}
	return p.Publish(t, cs...)
}

// hubRead waits until the hub has read recs.
func hubRead(t *testing.T, h *stream.Hub, recs []*kgo.Record) {
	t.Helper()
	waitFor(t, "the hub to read the records", func() bool {
		pos := h.Position()
		for _, r := range recs {
			if int(r.Partition) >= len(pos) || pos[r.Partition] <= r.Offset {
				return false
			}
		}
		return true
	})
}

// key is a record's place in the topic.
type key struct {
	p int32
	o int64
}

func keysOf(items []stream.Item) []key {
	out := make([]key, len(items))
	for i, it := range items {
		out[i] = key{it.Event.Partition, it.Event.Offset}
	}
	return out
}

func recKeys(recs []*kgo.Record, keep func(*kgo.Record) bool) []key {
	var out []key
	for _, r := range recs {
		if keep == nil || keep(r) {
			out = append(out, key{r.Partition, r.Offset})
		}
	}
	return out
}

// perPartition orders keys by partition, keeping each partition's order:
// the order the stream promises.
func perPartition(ks []key) map[int32][]int64 {
	m := map[int32][]int64{}
	for _, k := range ks {
		m[k.p] = append(m[k.p], k.o)
	}
	return m
}

func samePartitionOrder(t *testing.T, got, want []key) {
	t.Helper()
	g, w := perPartition(got), perPartition(want)
	if len(got) != len(want) || len(g) != len(w) {
		t.Fatalf("got %d records %v, want %d %v", len(got), g, len(want), w)
	}
	for p, offs := range w {
		if !slices.Equal(g[p], offs) {
			t.Errorf("partition %d: got %v, want %v", p, g[p], offs)
		}
	}
}

// TestFanOutAndFilters: one reader, two subscribers: the unfiltered one
// gets every comment, the filtered one exactly its post's, each in the
// topic's order, once.
func TestFanOutAndFilters(t *testing.T) {
	f := newFixture(t, 0)
	all := subscribe(t, f.hub, stream.Filter{}, nil)
	one := subscribe(t, f.hub, stream.Filter{PostID: posts[1]}, nil)
	named := subscribe(t, f.hub, stream.Filter{PostID: posts[1], Name: apitest.Names[1]}, nil)
	recs := publishN(t, f.pub, 40)

	samePartitionOrder(t, keysOf(collect(t, all, 40)), recKeys(recs, nil))
	gotOne := collect(t, one, 10)
	if want := recKeys(recs, func(r *kgo.Record) bool { return string(r.Key) == posts[1] }); !slices.Equal(keysOf(gotOne), want) {
		t.Errorf("post filter: got %v, want %v", keysOf(gotOne), want)
	}
	for _, it := range gotOne {
		if it.Event.PostID != posts[1] {
			t.Errorf("post filter let %s through", it.Event.PostID)
		}
	}
	// i%4 == 1 is always odd: names[1].
	if got := collect(t, named, 10); len(got) != 10 {
		t.Errorf("post and name: %d", len(got))
	}
	quiet(t, one)
}

// TestResume: a subscription resumed from an item's position gets exactly
// what followed it, while production goes on: nothing lost, nothing twice.
func TestResume(t *testing.T) {
	f := newFixture(t, 0)
	first := subscribe(t, f.hub, stream.Filter{}, nil)
	recs := publishN(t, f.pub, 30)
	got := collect(t, first, 12)
	first.Close()
	recs = append(recs, publishN(t, f.pub, 30)...) // while it is away
	hubRead(t, f.hub, recs)

	again := subscribe(t, f.hub, stream.Filter{}, got[len(got)-1].Pos)
	if !again.CatchingUp() {
		t.Error("a resume from behind the hub does not catch up")
	}
	more := publishN(t, f.pub, 20) // while it catches up
	recs = append(recs, more...)
	got = append(got, collect(t, again, 60+20-12)...)
	samePartitionOrder(t, keysOf(got), recKeys(recs, nil))
	quiet(t, again)
	if again.CatchingUp() {
		t.Error("caught up but never joined the broadcast")
	}
}

// TestResumeFiltered: the position of a filtered subscription covers the
// records it did not want, so a resume neither repeats nor loses its post's.
func TestResumeFiltered(t *testing.T) {
	f := newFixture(t, 0)
	s := subscribe(t, f.hub, stream.Filter{PostID: posts[2]}, nil)
	recs := publishN(t, f.pub, 40)
	got := collect(t, s, 4)
	s.Close()
	recs = append(recs, publishN(t, f.pub, 40)...)
	s = subscribe(t, f.hub, stream.Filter{PostID: posts[2]}, got[len(got)-1].Pos)
	got = append(got, collect(t, s, 16)...)
	want := recKeys(recs, func(r *kgo.Record) bool { return string(r.Key) == posts[2] })
	if !slices.Equal(keysOf(got), want) {
		t.Errorf("got %v\nwant %v", keysOf(got), want)
	}
	quiet(t, s)
}

// TestSlowSubscriberDropped: a subscriber that reads nothing is dropped
// once its buffer is full; the others get everything.
func TestSlowSubscriberDropped(t *testing.T) {
	const buffer = 8
	f := newFixture(t, buffer)
	slow := subscribe(t, f.hub, stream.Filter{}, nil)
	fast := subscribe(t, f.hub, stream.Filter{}, nil)
	// The fast one reads each batch before the next is published, so it
	// never has more than a batch (less than its buffer) waiting.
	for range 10 {
		publishN(t, f.pub, 5)
		collect(t, fast, 5)
	}
	var err error
	for range buffer + 2 { // the buffered ones, then the drop
		if _, err = slow.Next(t.Context(), time.Second); err != nil {
			break
		}
	}
	if !errors.Is(err, stream.ErrSlow) {
		t.Errorf("slow subscriber: %v, want ErrSlow", err)
	}
	if n := f.hub.Subscribers(); n != 1 {
		t.Errorf("%d subscribers registered, want 1", n)
	}
}

// TestPoisonSkipped: a record that cannot be decoded is skipped and
// counted; the stream goes on.
func TestPoisonSkipped(t *testing.T) {
	f := newFixture(t, 0)
	s := subscribe(t, f.hub, stream.Filter{PostID: posts[0]}, nil)
	good := apitest.Comment(posts[0], "Ada", 1)
	f.pub.Publish(t, good)
	f.pub.Raw(t, &kgo.Record{Key: []byte(posts[0]), Value: []byte("not avro")})
	good2 := apitest.Comment(posts[0], "Ada", 2)
	f.pub.Publish(t, good2)
	got := collect(t, s, 2)
	if got[0].Event.Offset+2 != got[1].Event.Offset {
		t.Errorf("offsets %d, %d: want the poison between them skipped", got[0].Event.Offset, got[1].Event.Offset)
	}
	if v := testutil.ToFloat64(f.hub.SkippedCounter(string(schemas.ClassBadFraming))); v != 1 {
		t.Errorf("skipped counter %v", v)
	}
}

// leaveBehind has a subscriber read one comment and leave, then publishes
// three more of its post (a partition's next three offsets) and waits for
// the hub to read them. It returns the comment read and the three records.
func leaveBehind(t *testing.T, f *fixture) (stream.Item, []*kgo.Record) {
	t.Helper()
	s := subscribe(t, f.hub, stream.Filter{}, nil)
	f.pub.Publish(t, apitest.Comment(posts[0], "Ada", 1))
	first := collect(t, s, 1)[0]
	s.Close()
	recs := f.pub.Publish(t, apitest.Comment(posts[0], "Ada", 2), apitest.Comment(posts[0], "Ada", 3), apitest.Comment(posts[0], "Ada", 4))
	hubRead(t, f.hub, recs)
	return first, recs
}

// TestResumePastRetention: a position older than the partition's start
// yields one gaps item saying what was lost, then the rest.
func TestResumePastRetention(t *testing.T) {
	f := newFixture(t, 0)
	first, recs := leaveBehind(t, f)
	p := recs[0].Partition
	deleteBelow(t, f, p, recs[2].Offset) // the first two records after the position
	s := subscribe(t, f.hub, stream.Filter{}, first.Pos)
	it, err := s.Next(t.Context(), time.Second)
	if err != nil || it.Event != nil || len(it.Gaps) != 1 {
		t.Fatalf("first item %+v, %v: want the gap", it, err)
	}
	if g := it.Gaps[0]; g.Partition != p || g.From != recs[0].Offset || g.To != recs[2].Offset {
		t.Errorf("gap %+v, want partition %d offsets %d to %d", g, p, recs[0].Offset, recs[2].Offset)
	}
	if got := collect(t, s, 1); got[0].Event.Offset != recs[2].Offset {
		t.Errorf("after the gap: offset %d, want %d", got[0].Event.Offset, recs[2].Offset)
	}
}

// TestKafkaUnavailable: without brokers the hub says Kafka is down, and
// Subscribe fails with that.
func TestKafkaUnavailable(t *testing.T) {
	srv := srfake.New()
	t.Cleanup(srv.Close)
	rc, _ := sr.NewClient(sr.URLs(srv.URL()))
	h, err := stream.NewHub(stream.Options{
		KafkaOpts: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1"), kgo.RetryTimeout(time.Second)}, Topic: names.Topic,
		Decoder: schemas.NewDecoder(rc),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var ue *stream.UnavailableError
	if !errors.As(h.State(), &ue) || ue.Part != "kafka" {
		t.Errorf("state %v", h.State())
	}
	if _, err := h.Subscribe(t.Context(), stream.Filter{}, nil); !errors.As(err, &ue) || ue.Part != "kafka" {
		t.Errorf("subscribe: %v", err)
	}
}

// TestCheckSeesKafkaGo: readiness's check notices brokers that go away
// after the hub started reading.
func TestCheckSeesKafkaGo(t *testing.T) {
	f := newFixture(t, 0)
	if err := f.hub.Check(t.Context()); err != nil {
		t.Fatalf("check while reading: %v", err)
	}
	f.kafka.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var ue *stream.UnavailableError
	if err := f.hub.Check(ctx); !errors.As(err, &ue) || ue.Part != "kafka" {
		t.Errorf("check with the brokers gone: %v", err)
	}
	// A new stream is refused (the endpoint answers 503 naming Kafka),
	// not opened to heartbeats that cannot carry anything.
	ue = nil
	if sub, err := f.hub.Subscribe(ctx, stream.Filter{}, nil); !errors.As(err, &ue) || ue.Part != "kafka" {
		if sub != nil {
			sub.Close()
		}
		t.Errorf("subscribe with the brokers gone: %v", err)
	}
}

// next returns the next item, comment or gaps (skipping idle).
func next(t *testing.T, s *stream.Subscription) stream.Item {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		it, err := s.Next(t.Context(), 50*time.Millisecond)
		if errors.Is(err, stream.ErrIdle) {
			if time.Now().After(deadline) {
				t.Fatal("timed out waiting for an item")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
}

// deleteBelow deletes partition p's records below off, as retention does.
func deleteBelow(t *testing.T, f *fixture, p int32, off int64) {
	t.Helper()
	var del kadm.Offsets
	del.AddOffset(names.Topic, p, off, -1)
	resp, err := kadm.NewClient(f.pub.Client).DeleteRecords(t.Context(), del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// fetchHold makes the broker hold the fetch requests that match, from
// when it is made until release: a reader held so cannot read.
type fetchHold struct {
	holding atomic.Bool
	held    chan struct{}
	wake    chan struct{}
	once    sync.Once
}

func holdFetches(t *testing.T, kc *kfake.Cluster, match func(*kmsg.FetchRequest) bool) *fetchHold {
	h := &fetchHold{held: make(chan struct{}, 1), wake: make(chan struct{})}
	h.holding.Store(true)
	kc.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if !h.holding.Load() || !match(req.(*kmsg.FetchRequest)) {
			return nil, nil, false
		}
		select {
		case h.held <- struct{}{}:
		default:
		}
		kc.SleepControl(func() { <-h.wake })
		return nil, nil, false // then the broker answers it
	})
	t.Cleanup(h.release)
	return h
}

// wait returns once a fetch is held. A franz-go client has one fetch in
// flight per broker: the one before has been answered, so the reader
// cannot see records produced from now on until release.
func (h *fetchHold) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.held:
	case <-time.After(time.Minute):
		t.Fatal("no fetch to hold")
	}
}

func (h *fetchHold) release() {
	h.once.Do(func() {
		h.holding.Store(false)
		close(h.wake)
	})
}

// wantGap checks that it is a gaps item naming exactly partition p's
// offsets from to to, with the position right after the gap: to in p,
// as before elsewhere.
func wantGap(t *testing.T, who string, it stream.Item, p int32, from, to int64, before []int64) {
	t.Helper()
	if it.Event != nil {
		t.Fatalf("%s: comment at %d/%d before any gaps item: the records %d to %d of partition %d were lost silently",
			who, it.Event.Partition, it.Event.Offset, from, to, p)
	}
	if want := []stream.Gap{{Partition: p, From: from, To: to}}; !slices.Equal(it.Gaps, want) {
		t.Errorf("%s: gaps %+v, want %+v", who, it.Gaps, want)
	}
	if want := moved(before, p, to); !slices.Equal(it.Pos, want) {
		t.Errorf("%s: position after the gap %v, want %v", who, it.Pos, want)
	}
}

// moved is pos with partition p at off.
func moved(pos []int64, p int32, off int64) []int64 {
	pos = slices.Clone(pos)
	pos[p] = off
	return pos
}

// TestHubBehindRetention: when the hub's own reader falls behind the
// topic's retention (it could not fetch while retention deleted records
// it had not read), every subscriber, whatever its filter, gets a gaps
// item naming exactly the deleted records, then the stream goes on right
// after them.
func TestHubBehindRetention(t *testing.T) {
	// A short fetch wait, so that the hub's pending fetch ends soon and
	// the next one is held.
	f := newFixture(t, 0, kgo.FetchMaxWait(100*time.Millisecond))
	recs := f.pub.Publish(t, apitest.Comment(posts[0], "Ada", 1))
	p := recs[0].Partition
	hubRead(t, f.hub, recs)
	all := subscribe(t, f.hub, stream.Filter{}, nil)
	other := subscribe(t, f.hub, stream.Filter{PostID: posts[1]}, nil)

	hold := holdFetches(t, f.kafka, func(*kmsg.FetchRequest) bool { return true }) // only the hub fetches
	hold.wait(t)
	before := f.hub.Position()
	recs = f.pub.Publish(t, apitest.Comment(posts[0], "Ada", 2), apitest.Comment(posts[0], "Ada", 3), apitest.Comment(posts[0], "Ada", 4))
	deleteBelow(t, f, p, recs[2].Offset) // the first two, unread
	if pos := f.hub.Position(); !slices.Equal(pos, before) {
		t.Fatalf("the held hub read on: %v, was %v", pos, before)
	}
	hold.release()

	wantGap(t, "unfiltered", next(t, all), p, recs[0].Offset, recs[2].Offset, before)
	it := next(t, all)
	if it.Event == nil || it.Event.Partition != p || it.Event.Offset != recs[2].Offset {
		t.Fatalf("after the gap: %+v, want the comment at %d/%d", it, p, recs[2].Offset)
	}
	if want := moved(before, p, recs[2].Offset+1); !slices.Equal(it.Pos, want) {
		t.Errorf("position after the comment %v, want %v", it.Pos, want)
	}
	wantGap(t, "other post", next(t, other), p, recs[0].Offset, recs[2].Offset, before)
	if v := testutil.ToFloat64(f.hub.SkippedCounter("retention")); v != 2 {
		t.Errorf("skipped counter (retention) %v, want 2", v)
	}
	// The hub goes on reading.
	more := f.pub.Publish(t, apitest.Comment(posts[0], "Ada", 5))
	if got := collect(t, all, 1); got[0].Event.Offset != more[0].Offset {
		t.Errorf("then offset %d, want %d", got[0].Event.Offset, more[0].Offset)
	}
}

// TestCatchUpBehindRetention: a catch-up reader that falls behind
// retention (records deleted after the resume began) yields a gaps item
// naming exactly the deleted records, then goes on after them.
func TestCatchUpBehindRetention(t *testing.T) {
	f := newFixture(t, 0)
	first, recs := leaveBehind(t, f)
	p := recs[0].Partition

	// Hold the catch-up's fetches (the hub's are past these offsets).
	hold := holdFetches(t, f.kafka, func(req *kmsg.FetchRequest) bool {
		for _, ft := range req.Topics {
			for _, fp := range ft.Partitions {
				if fp.Partition == p && fp.FetchOffset < recs[2].Offset {
					return true
				}
			}
		}
		return false
	})
	s := subscribe(t, f.hub, stream.Filter{}, first.Pos)
	if !s.CatchingUp() {
		t.Fatal("a resume from behind the hub does not catch up")
	}
	hold.wait(t)
	deleteBelow(t, f, p, recs[2].Offset) // after Subscribe looked at the partitions' start
	hold.release()

	wantGap(t, "catch-up", next(t, s), p, recs[0].Offset, recs[2].Offset, first.Pos)
	got := collect(t, s, 1)
	if got[0].Event.Offset != recs[2].Offset {
		t.Errorf("after the gap: offset %d, want %d", got[0].Event.Offset, recs[2].Offset)
	}
	if want := moved(first.Pos, p, recs[2].Offset+1); !slices.Equal(got[0].Pos, want) {
		t.Errorf("position after the comment %v, want %v", got[0].Pos, want)
	}
	if v := testutil.ToFloat64(f.hub.SkippedCounter("retention")); v != 2 {
		t.Errorf("skipped counter (retention) %v, want 2", v)
	}
}

// TestResumeAheadOfTheHub: a token from a replica whose reader was further
// on (here: 5 records ahead in one partition) joins the broadcast at once,
// skips what it already had, and its position never goes back in any
// partition, so a second resume neither repeats nor loses records.
func TestResumeAheadOfTheHub(t *testing.T) {
	f := newFixture(t, 0)
	hubRead(t, f.hub, publishN(t, f.pub, 30))
	ahead := f.hub.Position()
	const p0, by = 0, 5
	ahead[p0] += by
	s := subscribe(t, f.hub, stream.Filter{}, ahead)
	if s.CatchingUp() {
		t.Fatal("a resume ahead of the hub catches up instead of joining the broadcast")
	}
	more := publishN(t, f.pub, 30)
	want := recKeys(more, func(r *kgo.Record) bool { return r.Partition != p0 || r.Offset >= ahead[p0] })
	got := collect(t, s, len(want))
	samePartitionOrder(t, keysOf(got), want)
	for _, it := range got {
		for p, o := range ahead {
			if p >= len(it.Pos) || it.Pos[p] < o {
				t.Fatalf("comment at %d/%d: position %v goes back before the resume position %v in partition %d",
					it.Event.Partition, it.Event.Offset, it.Pos, ahead, p)
			}
		}
	}
	quiet(t, s)
}
