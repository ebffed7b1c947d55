package app

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/devstack/ssetest"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/schemas"
)

// streaming starts a gateway reading the test stack's topic.
func streaming(t *testing.T, kv map[string]string) *gateway {
	t.Helper()
	vars := map[string]string{"KAFKA_BROKERS": kafkaAddr, "SCHEMA_REGISTRY_URL": registryURL, "GATEWAY_STREAM_HEARTBEAT": "200ms"}
	for k, v := range kv {
		vars[k] = v
	}
	g := start(t, vars, nil)
	// The stream answers once the hub reads the topic.
	_ = openEventually(t, g.url(streamPath)).Close()
	return g
}

const streamPath = "/api/v1/comments/stream"

func (g *gateway) url(path string) string { return "http://" + g.addr + path }

func open(t *testing.T, u, lastID string) *ssetest.Stream {
	t.Helper()
	s, err := ssetest.Open(t.Context(), u, lastID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// next reads n comment events, failing on any other event.
func next(t *testing.T, s *ssetest.Stream, n int) []ssetest.Event {
	t.Helper()
	evs, err := s.Events("comment", n)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func ids(t *testing.T, evs []ssetest.Event) []string {
	t.Helper()
	out := make([]string, len(evs))
	for i, ev := range evs {
		var c struct {
			ID        string `json:"id"`
			PostID    string `json:"post_id"`
			CreatedAt string `json:"created_at"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil || c.ID == "" || c.CreatedAt == "" {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		out[i] = c.PostID + "/" + c.ID
	}
	return out
}

func makeComments(n int) []schemas.Comment {
	cs := make([]schemas.Comment, n)
	for i := range cs {
		cs[i] = apitest.Comment(apitest.Posts[i%len(apitest.Posts)], apitest.Names[i%3], i)
	}
	return cs
}

func wantIDs(cs []schemas.Comment, post string) []string {
	var out []string
	for _, c := range cs {
		if post == "" || c.PostID == post {
			out = append(out, c.PostID+"/"+c.ID)
		}
	}
	return out
}

// TestStreamFilteredAndResumed: over TCP, a stream filtered by post gets
// exactly that post's comments in order; reconnecting with the last id
// while comments keep coming loses and repeats none. The server's read
// and write timeouts (1s here) do not end a stream that lasts longer.
func TestStreamFilteredAndResumed(t *testing.T) {
	g := streaming(t, map[string]string{"GATEWAY_READ_TIMEOUT": "1s", "GATEWAY_WRITE_TIMEOUT": "1s", "GATEWAY_DB_TIMEOUT": "500ms"})
	pub := apitest.NewPublisher(t, kafkaAddr, registryURL)
	post := apitest.Posts[1]
	u := g.url(streamPath + "?post_id=" + strings.ToUpper(post)) // canonicalised like the list's
	s := open(t, u, "")
	if ct := s.Resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	// Outlive the server's timeouts on heartbeats alone.
	for began := time.Now(); time.Since(began) < 1500*time.Millisecond; {
		ev, err := s.NextBlock()
		if err != nil || ev.Type != "" {
			t.Fatalf("waiting on heartbeats: %+v, %v", ev, err)
		}
	}
	if s.Retry != 2000 || s.Comments == 0 || s.LastID == "" {
		t.Errorf("retry %d, %d heartbeats, start id %q", s.Retry, s.Comments, s.LastID)
	}

	cs := makeComments(40)
	pub.Publish(t, cs[:20]...)
	got := ids(t, next(t, s, 5)) // of post 1: 5 in the first 20
	_ = s.Close()
	pub.Publish(t, cs[20:]...) // while it is away
	s = open(t, u, s.LastID)
	got = append(got, ids(t, next(t, s, 5))...)
	if want := wantIDs(cs, post); !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// problem reads a problem+json answer.
func problem(t *testing.T, err error) (int, map[string]any) {
	t.Helper()
	var se *ssetest.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want a refused stream, got %v", err)
	}
	if se.ContentType != "application/problem+json" {
		t.Errorf("Content-Type %q", se.ContentType)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(se.Body), &p); err != nil {
		t.Fatalf("problem %q: %v", se.Body, err)
	}
	return se.Status, p
}

// TestStreamBadInput: bad filters and resume ids that are edited, of
// another kind, of other filters or of another secret answer 400 naming
// the parameter, before any stream opens.
func TestStreamBadInput(t *testing.T) {
	const secret = "stream test secret 0123456789"
	g := streaming(t, map[string]string{"GATEWAY_CURSOR_SECRET": secret})
	other := streaming(t, map[string]string{"GATEWAY_CURSOR_SECRET": "another secret 0123456789"})
	post := apitest.Posts[0]
	s := open(t, g.url(streamPath+"?post_id="+post), "")
	if _, err := s.NextBlock(); err != nil {
		t.Fatal(err)
	}
	good := s.LastID
	_ = s.Close()
	if good == "" {
		t.Fatal("no id at the start of the stream")
	}
	os := open(t, other.url(streamPath+"?post_id="+post), "")
	if _, err := os.NextBlock(); err != nil {
		t.Fatal(err)
	}
	foreign := os.LastID
	_ = os.Close()
	_, body := g.get(t, "/api/v1/comments?limit=1")
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	_ = json.Unmarshal(body, &page)
	edited := []byte(good)
	edited[len(edited)/2] ^= 1
	if edited[len(edited)/2] == '`' || edited[len(edited)/2] == '^' {
		edited[len(edited)/2] = 'A'
	}

	for _, tc := range []struct {
		name, query, lastID, param string
	}{
		{"bad post_id", "?post_id=nope", "", "post_id"},
		{"bad name", "?name=%7Bx%7D", "", "name"},
		{"unknown parameter", "?post=1", "", "post"},
		{"edited id", "?post_id=" + post, string(edited), "Last-Event-ID"},
		{"other filters", "?post_id=" + apitest.Posts[1], good, "Last-Event-ID"},
		{"other secret", "?post_id=" + post, foreign, "Last-Event-ID"},
		{"list cursor", "?post_id=" + post, page.NextCursor, "Last-Event-ID"},
		{"not a token", "?post_id=" + post, "a b", "Last-Event-ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lastID == "" && tc.param == "Last-Event-ID" {
				t.Fatal("the test lacks a token")
			}
			_, err := ssetest.Open(t.Context(), g.url(streamPath+tc.query), tc.lastID)
			status, p := problem(t, err)
			errs, _ := p["errors"].([]any)
			if status != http.StatusBadRequest || len(errs) == 0 || errs[0].(map[string]any)["parameter"] != tc.param {
				t.Errorf("%d %v, want 400 naming %s", status, p, tc.param)
			}
		})
	}
	// The good id resumes.
	s = open(t, g.url(streamPath+"?post_id="+post), good)
	_ = s.Close()
}

// openEventually opens a stream, retrying 503s for up to a minute.
func openEventually(t *testing.T, u string) *ssetest.Stream {
	t.Helper()
	s, err := ssetest.OpenRetrying(t.Context(), u, "", time.Minute)
	if err != nil {
		t.Fatalf("the stream did not open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStreamLimit: beyond GATEWAY_MAX_STREAMS a stream is refused with 503
// problem+json; a closed stream frees its place.
func TestStreamLimit(t *testing.T) {
	g := streaming(t, map[string]string{"GATEWAY_MAX_STREAMS": "2"})
	// A real client retries a 503: the probe stream of streaming() may not
	// have been noticed closed yet.
	a := openEventually(t, g.url(streamPath))
	openEventually(t, g.url(streamPath))
	_, err := ssetest.Open(t.Context(), g.url(streamPath), "")
	status, p := problem(t, err)
	if status != http.StatusServiceUnavailable || !strings.Contains(p["detail"].(string), "at most 2") {
		t.Errorf("third stream: %d %v", status, p)
	}
	_ = a.Close()
	openEventually(t, g.url(streamPath)) // a closed stream frees its place
	_, body := g.get(t, "/metrics")
	if !regexp.MustCompile(`(?m)^commentflow_gateway_streams_refused_total\{reason="limit"\} [1-9]`).Match(body) {
		t.Error("the refusal is not counted")
	}
}

// TestStreamWithoutKafka: with Kafka unreachable the gateway starts, the
// list works, /readyz is degraded naming kafka, and the stream answers 503
// saying Kafka is the reason.
func TestStreamWithoutKafka(t *testing.T) {
	g := start(t, map[string]string{"KAFKA_BROKERS": closedAddr(t), "SCHEMA_REGISTRY_URL": registryURL}, nil)
	if status, body := g.get(t, "/api/v1/comments?limit=2"); status != http.StatusOK {
		t.Errorf("list: %d %s", status, body)
	}
	status, body := g.get(t, "/readyz")
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(body, &ready)
	if status != http.StatusOK || ready.Status != "degraded" || ready.Checks["mongodb"] != "ok" || !strings.Contains(ready.Checks["kafka"], "kafka is unavailable") {
		t.Errorf("/readyz: %d %s", status, body)
	}
	_, err := ssetest.Open(t.Context(), g.url(streamPath), "")
	status, p := problem(t, err)
	if status != http.StatusServiceUnavailable || !strings.Contains(p["detail"].(string), "Kafka") {
		t.Errorf("stream: %d %v", status, p)
	}
}

// TestStreamShutdown: stopping the gateway ends every stream with an
// error event saying so, and run returns.
func TestStreamShutdown(t *testing.T) {
	g := streaming(t, nil)
	s := open(t, g.url(streamPath), "")
	if _, err := s.NextBlock(); err != nil { // the stream is open
		t.Fatal(err)
	}
	g.cancel()
	var last ssetest.Event
	for {
		ev, err := s.Next()
		if err != nil {
			break
		}
		last = ev
	}
	var e struct{ Reason string }
	_ = json.Unmarshal([]byte(last.Data), &e)
	if last.Type != "error" || e.Reason != "shutdown" {
		t.Errorf("last event %+v, want an error event with reason shutdown", last)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
		g.done <- nil
	case <-time.After(time.Minute):
		t.Fatal("run did not return")
	}
}
