package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// spanReceiver is an OTLP/HTTP traces endpoint that keeps what it receives.
type spanReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newSpanReceiver(t *testing.T) *spanReceiver {
	r := &spanReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var ex coltracepb.ExportTraceServiceRequest
		if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *spanReceiver) named(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

// A round that gives up on the registry drops the record it was decoding:
// that record's process span still ends (marked dropped, to be
// redelivered) and is exported; once the registry is back every comment is
// stored with the trace ID of a process span that ended well.
func TestDroppedRecordsEndTheirProcessSpans(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	rcv := newSpanReceiver(t)
	down := s.registryDown()
	ev.produce(50)
	a := s.start("a", s.env("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL))
	eventually(t, "a to give up a round on the registry", func() (bool, string) {
		return strings.Contains(a.logs.String(), "round given up"), ""
	})
	down.Store(false)
	want := ev.expected()
	s.waitCount(int64(len(want)))
	if err := a.stop(); err != nil { // flushes the spans
		t.Fatalf("Run returned %v", err)
	}

	const process = "comments process"
	var dropped int
	ok := map[string]bool{} // trace IDs of process spans that ended well
	for _, sp := range rcv.named(process) {
		st := sp.GetStatus()
		switch {
		case st.GetCode() == tracepb.Status_STATUS_CODE_ERROR && strings.HasPrefix(st.GetMessage(), "dropped uncommitted"):
			dropped++
		case st.GetCode() != tracepb.Status_STATUS_CODE_ERROR:
			ok[fmt.Sprintf("%x", sp.GetTraceId())] = true
		}
	}
	if dropped == 0 {
		t.Fatalf("no %q span marked dropped among %d: the record the round gave up on never ended its span", process, len(rcv.named(process)))
	}
	for _, d := range s.documents() {
		if !ok[d.TraceID] {
			t.Errorf("comment %s: trace_id %q is not the trace of an exported process span that ended well", d.ID, d.TraceID)
		}
	}
}
