package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/ssetest"
	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas"
)

const streamPath = "/api/v1/comments/stream"

// topicRecord is a comment as the topic holds it.
type topicRecord struct {
	ID, PostID string
	Partition  int32
	Offset     int64
}

// topicContent reads the whole comments topic, in each partition's order:
// the ground truth a stream is checked against.
func topicContent(t *testing.T, sys *system.System) []topicRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, _ := kafkatest.EndOffsets(ctx, t, schemas.Topic, kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	left := map[int32]int64{}
	for p, o := range ends {
		if o > 0 {
			left[p] = o
		}
	}
	dec := decoder(t, sys)
	var out []topicRecord
	kafkatest.Read(ctx, t, schemas.Topic, func() (bool, string) { return len(left) == 0, fmt.Sprintf("partitions left %v", left) },
		func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			c, _, err := dec.Decode(ctx, r.Value)
			if err != nil {
				return
			}
			out = append(out, topicRecord{ID: c.ID, PostID: c.PostID, Partition: r.Partition, Offset: r.Offset})
		}, kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	return out
}

// ofPost is the ids of post's comments in topic order.
func ofPost(recs []topicRecord, post string) []string {
	var out []string
	for _, r := range recs {
		if r.PostID == post {
			out = append(out, r.ID)
		}
	}
	return out
}

type streamed struct {
	ID     string `json:"id"`
	PostID string `json:"post_id"`
}

func openStream(t testing.TB, u, lastID string) *ssetest.Stream {
	t.Helper()
	s, err := ssetest.OpenRetrying(t.Context(), u, lastID, time.Minute)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// readComments reads n comment events from s.
func readComments(t *testing.T, s *ssetest.Stream, n int) []streamed {
	t.Helper()
	evs, err := s.Events("comment", n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]streamed, len(evs))
	for i, ev := range evs {
		if err := json.Unmarshal([]byte(ev.Data), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// contiguous checks that got is exactly want from got's first element on
// (or, with fromStart, from want's first): nothing lost, nothing repeated,
// in order.
func contiguous(t *testing.T, what string, got, want []string, fromStart bool) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: nothing received", what)
	}
	i := slices.Index(want, got[0])
	if i < 0 || (fromStart && i != 0) {
		t.Fatalf("%s: first comment %s is at %d of the topic's %d", what, got[0], i, len(want))
	}
	if !slices.Equal(got, want[i:]) {
		t.Errorf("%s: got %d comments, the topic has %d from the first one on; first difference at %d",
			what, len(got), len(want)-i, firstDiff(got, want[i:]))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestStreamFilteredAndResumedAgainstTheTopic: while the real producer
// writes, a stream filtered by a post receives exactly that post's
// comments, in the topic's order, once each, even across a disconnect and
// a reconnect with Last-Event-ID while production goes on; an unfiltered
// stream open from the start gets every comment, each post in order.
func TestStreamFilteredAndResumedAgainstTheTopic(t *testing.T) {
	const n = 1200
	sys := start(t, system.Config{NoProducer: true, Rate: 200, Env: []string{"PRODUCER_POSTS=4"}})
	all := openStream(t, sys.GatewayURL()+streamPath, "")
	if _, err := all.NextBlock(); err != nil { // open: it starts at the end
		t.Fatal(err)
	}
	prod, err := sys.StartProducer(n)
	if err != nil {
		t.Fatal(err)
	}
	first := readComments(t, all, 1)
	post := first[0].PostID

	u := sys.GatewayURL() + streamPath + "?post_id=" + url.QueryEscape(post)
	one := openStream(t, u, "")
	got := readComments(t, one, 10)
	lastID := one.LastID
	_ = one.Close()
	seen := slices.Concat(first, readComments(t, all, 100)) // production goes on meanwhile

	one = openStream(t, u, lastID)
	select {
	case <-prod.Exited():
	case <-time.After(5 * time.Minute):
		t.Fatal("the producer did not finish")
	}
	topic := topicContent(t, sys)
	want := ofPost(topic, post)
	i := slices.Index(want, got[0].ID)
	if i < 0 {
		t.Fatalf("first streamed comment %s is not on the topic", got[0].ID)
	}
	got = append(got, readComments(t, one, len(want)-i-len(got))...)
	var gotIDs []string
	for _, c := range got {
		if c.PostID != post {
			t.Errorf("comment %s of post %s in a stream of post %s", c.ID, c.PostID, post)
		}
		gotIDs = append(gotIDs, c.ID)
	}
	contiguous(t, "filtered stream", gotIDs, want, false)

	seen = append(seen, readComments(t, all, len(topic)-len(seen))...)
	if len(topic) != n {
		t.Errorf("the topic holds %d comments, want %d", len(topic), n)
	}
	for _, p := range postsOf(topic) {
		var ids []string
		for _, c := range seen {
			if c.PostID == p {
				ids = append(ids, c.ID)
			}
		}
		contiguous(t, "unfiltered stream, post "+p, ids, ofPost(topic, p), true)
	}
}

func postsOf(recs []topicRecord) []string {
	var out []string
	for _, r := range recs {
		if !slices.Contains(out, r.PostID) {
			out = append(out, r.PostID)
		}
	}
	return out
}

// metric reads one sample of the gateway's /metrics (0 when absent).
func metric(t *testing.T, sys *system.System, name string) float64 {
	t.Helper()
	_, _, body, err := get(t.Context(), sys.GatewayURL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestSlowStreamClientIsDroppedAndMemoryStaysBounded: a client that never
// reads is disconnected (and counted), a fast client beside it receives
// every comment, and the gateway's heap does not grow with the comments
// the slow one did not take.
func TestSlowStreamClientIsDroppedAndMemoryStaysBounded(t *testing.T) {
	const n = 20000
	// At 1,000 comments/s a buffer of 1,000 gives the fast client a second
	// of slack on a loaded machine; the slow one falls behind by all n.
	sys := start(t, system.Config{NoProducer: true, Rate: 1000, Env: []string{"GATEWAY_STREAM_BUFFER=1000", "GATEWAY_STREAM_WRITE_TIMEOUT=2s"}})
	fast := openStream(t, sys.GatewayURL()+streamPath, "")
	if _, err := fast.NextBlock(); err != nil {
		t.Fatal(err)
	}
	// The slow client sends its request and never reads a byte.
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", strings.TrimPrefix(sys.GatewayURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // keep the kernel from soaking up the stream
	}
	if _, err := io.WriteString(conn, "GET "+streamPath+" HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for metric(t, sys, "commentflow_gateway_streams_open") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow client's stream did not open")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := liveHeap(t, sys)

	if _, err := sys.StartProducer(n); err != nil {
		t.Fatal(err)
	}
	if got := readComments(t, fast, n); len(got) != n {
		t.Fatalf("fast client got %d", len(got))
	}
	for metric(t, sys, "commentflow_gateway_stream_slow_disconnects_total") < 1 {
		if time.Now().After(deadline.Add(4 * time.Minute)) {
			t.Fatal("the slow client was never disconnected")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := liveHeap(t, sys)
	// Holding the comments the slow client did not read would take more
	// than n × 600 bytes (12 MB); the buffers are bounded far below that.
	const bound = 6 << 20
	t.Logf("gateway live heap: %.1f MB before, %.1f MB after %d comments", before/(1<<20), after/(1<<20), n)
	if after-before > bound {
		t.Errorf("the gateway's heap grew by %.1f MB, more than %d MB", (after-before)/(1<<20), bound>>20)
	}
}

// liveHeap is the gateway's live heap after a fresh garbage collection:
// it makes the gateway allocate (by scraping its metrics) until two more
// collections have completed, then reads the heap goal, which Go sets to
// twice the live heap (GOGC=100).
func liveHeap(t *testing.T, sys *system.System) float64 {
	t.Helper()
	gcs := metric(t, sys, "go_gc_duration_seconds_count")
	deadline := time.Now().Add(2 * time.Minute)
	for metric(t, sys, "go_gc_duration_seconds_count") < gcs+2 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not collect garbage")
		}
	}
	return metric(t, sys, "go_memstats_next_gc_bytes") / 2
}
