package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/gateway/internal/stream"
	"github.com/commentflow/commentflow/platform/ops"
)

const (
	streamPath = "/api/v1/comments/stream"
	streamType = "text/event-stream"
)

// StreamOptions are the limits of the comment stream.
type StreamOptions struct {
	// Hub is the topic reader the streams subscribe to; nil answers 503.
	Hub *stream.Hub
	// Max is the most streams open at once; 0 means 100.
	Max int
	// Heartbeat is the idle time after which a keep-alive comment is sent;
	// 0 means 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds the write of each event; 0 means 10s.
	WriteTimeout time.Duration
	// Retry is the reconnection delay advised to clients; 0 means 2s.
	Retry time.Duration
}

func (o *StreamOptions) defaults() {
	if o.Max <= 0 {
		o.Max = 100
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
}

// streamParams are the typed, validated parameters of a stream request.
type streamParams struct {
	filter stream.Filter
	scope  string
	from   []int64 // nil: start at the end
}

// streamMetrics are the stream's own collectors.
type streamMetrics struct {
	open   prometheus.Gauge
	sent   prometheus.Counter
	slow   prometheus.Counter
	refuse *prometheus.CounterVec
}

func newStreamMetrics(reg prometheus.Registerer) (*streamMetrics, error) {
	m := &streamMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commentflow_gateway_streams_open",
			Help: "Comment streams (Server-Sent Events) open now, catching up or live.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commentflow_gateway_stream_events_sent_total",
			Help: "Comment events written to stream clients.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commentflow_gateway_stream_slow_disconnects_total",
			Help: "Stream clients disconnected because they did not keep up (full buffer or write deadline).",
		}),
		refuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commentflow_gateway_streams_refused_total",
			Help: "Stream requests refused with 503, by reason (limit, unavailable).",
		}, []string{"reason"}),
	}
	if err := ops.Register(reg, m.open, m.sent, m.slow, m.refuse); err != nil {
		return nil, err
	}
	return m, nil
}

// streamScope renders a stream's filters canonically; tokens are bound to
// it.
func streamScope(f stream.Filter) string {
	return "stream&post_id=" + strconv.Quote(f.PostID) + "&name=" + strconv.Quote(f.Name)
}

// streamDecoder returns the decoder of the stream operation: the spec
// checked each parameter; it canonicalizes post_id and checks the resume
// token's signature and filters.
func (s *server) streamDecoder(route *routers.Route) (decoder[streamParams], error) {
	if err := declared(route, openapi3.ParameterInQuery, "post_id", "name"); err != nil {
		return nil, err
	}
	if err := declared(route, openapi3.ParameterInHeader, "Last-Event-ID"); err != nil {
		return nil, err
	}
	return func(in input) (streamParams, []ParameterError) {
		var p streamParams
		p.filter.PostID = strings.ToLower(in.query.Get("post_id"))
		p.filter.Name = in.query.Get("name")
		p.scope = streamScope(p.filter)
		tok := in.header.Get("Last-Event-ID")
		if tok == "" {
			return p, nil
		}
		from, err := s.cursors.DecodeOffsets(tok, p.scope)
		var reason string
		switch {
		case errors.Is(err, cursor.ErrScope):
			reason = "was issued for a stream with other filters (post_id, name); reconnect with the same filters or without Last-Event-ID"
		case err != nil:
			reason = "is not an event id this server issued (malformed, edited, or signed with another GATEWAY_CURSOR_SECRET)"
		default:
			p.from = from
			return p, nil
		}
		return p, []ParameterError{{Parameter: "Last-Event-ID", In: "header", Reason: reason}}
	}, nil
}

// streamComments serves one stream until the client leaves, is too slow,
// or the gateway stops.
func (s *server) streamComments(w http.ResponseWriter, r *http.Request, p streamParams) {
	o := &s.stream
	if o.Hub == nil {
		s.streamMetrics.refuse.WithLabelValues("unavailable").Inc()
		unavailable(w, r, "The comment stream is not configured on this gateway.")
		return
	}
	if n := s.openStreams.Add(1); n > int64(o.Max) {
		s.openStreams.Add(-1)
		s.streamMetrics.refuse.WithLabelValues("limit").Inc()
		unavailable(w, r, fmt.Sprintf("Too many streams are open on this gateway (at most %d); retry later.", o.Max))
		return
	}
	defer s.openStreams.Add(-1)
	sub, err := o.Hub.Subscribe(r.Context(), p.filter, p.from)
	if err != nil {
		s.streamMetrics.refuse.WithLabelValues("unavailable").Inc()
		s.log.WarnContext(r.Context(), "stream refused", "err", err)
		unavailable(w, r, "The comment stream is unavailable: "+streamCause(err)+". The list and item endpoints still work.")
		return
	}
	defer sub.Close()
	s.streamMetrics.open.Inc()
	defer s.streamMetrics.open.Dec()

	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: o.WriteTimeout, codec: s.cursors, scope: p.scope}
	h := w.Header()
	h.Set("Content-Type", streamType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	start, _ := sub.Position()
	if err := sw.block(fmt.Sprintf("retry: %d\n", o.Retry.Milliseconds()), start, "", nil); err != nil {
		return
	}
	for {
		it, err := sub.Next(r.Context(), o.Heartbeat)
		switch {
		case errors.Is(err, stream.ErrIdle):
			pos, ok := sub.Position()
			if !ok {
				continue
			}
			err = sw.block(": keep-alive\n", pos, "", nil)
		case errors.Is(err, stream.ErrSlow):
			s.streamMetrics.slow.Inc()
			s.log.InfoContext(r.Context(), "stream client too slow: disconnected", "filter", p.scope)
			_ = sw.block("", nil, "error", stream.ErrorEvent{Reason: "slow",
				Detail: "The client did not read events fast enough and is disconnected; reconnect with the last event id to resume."})
			return
		case errors.Is(err, stream.ErrClosed):
			_ = sw.block("", nil, "error", stream.ErrorEvent{Reason: "shutdown",
				Detail: "The gateway is shutting down; reconnect with the last event id to resume."})
			return
		case err != nil:
			return // the client left
		case it.Event != nil:
			err = sw.event(it.Pos, it.Event.JSON)
			if err == nil {
				s.streamMetrics.sent.Inc()
			}
		default:
			err = sw.block("", it.Pos, "skipped", stream.Skipped(it.Gaps))
		}
		if err != nil {
			if isTimeout(err) { // a write deadline; context.DeadlineExceeded is a Timeout() too
				s.streamMetrics.slow.Inc()
				s.log.InfoContext(r.Context(), "stream client too slow: write deadline passed", "filter", p.scope)
			}
			return
		}
	}
}

func streamCause(err error) string {
	var ue *stream.UnavailableError
	if errors.As(err, &ue) {
		switch ue.Part {
		case "kafka":
			return "Kafka cannot be reached"
		default:
			return "the " + ue.Part + " cannot be reached"
		}
	}
	if errors.Is(err, stream.ErrClosed) {
		return "the gateway is shutting down"
	}
	return "it failed to start"
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// sseWriter writes Server-Sent Events blocks, each within its own write
// deadline, flushed at once.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	codec   *cursor.Codec
	scope   string
	buf     []byte
	lastID  string
}

// event writes one comment (its JSON, already rendered).
func (sw *sseWriter) event(pos []int64, data []byte) error {
	return sw.write("", pos, "comment", data)
}

// block is write with v as the event's JSON data.
func (sw *sseWriter) block(prefix string, pos []int64, typ string, v any) error {
	var data []byte
	if typ != "" {
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	return sw.write(prefix, pos, typ, data)
}

// write writes prefix (lines ending in \n), an id line for pos (nil: none,
// nor when it did not move), and an event of type typ with data (none when
// typ is "").
func (sw *sseWriter) write(prefix string, pos []int64, typ string, data []byte) error {
	sw.buf = append(sw.buf[:0], prefix...)
	if pos != nil {
		sw.buf = sw.appendID(sw.buf, pos)
	}
	if typ != "" {
		sw.buf = append(sw.buf, "event: "...)
		sw.buf = append(sw.buf, typ...)
		sw.buf = append(sw.buf, "\ndata: "...)
		sw.buf = append(sw.buf, data...)
		sw.buf = append(sw.buf, '\n')
	}
	if len(sw.buf) == 0 {
		return nil
	}
	sw.buf = append(sw.buf, '\n')
	return sw.flush()
}

func (sw *sseWriter) appendID(b []byte, pos []int64) []byte {
	id := sw.codec.EncodeOffsets(pos, sw.scope)
	if id == sw.lastID {
		return b
	}
	sw.lastID = id
	return append(append(append(b, "id: "...), id...), '\n')
}

func (sw *sseWriter) flush() error {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)); err != nil {
		return err
	}
	if _, err := sw.w.Write(sw.buf); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// openStreams counts the streams of a server.
type openStreams = atomic.Int64
