// Package stream is the source of the gateway's live comment stream: one
// reader of the comments topic per process (a Hub), fanned out to any number
// of subscribers, plus a catch-up reader for a subscriber that resumes from
// an earlier position.
//
// The hub reads the topic with franz-go as a direct consumer, without a
// consumer group, so it never takes partitions from the consumer group that
// writes to MongoDB. It starts at the end of every partition. Each record is
// decoded once with the schema registry (schemas.Decoder); a record that can
// never be decoded (poison) is skipped, since the consumer dead-letters it;
// a registry outage is waited out, so nothing is skipped for it.
//
// A position is the offset of the next record to read in every partition.
// Every item a subscriber receives carries the position right after it, for
// that subscriber: resuming from it continues exactly after that item,
// since every record before it was delivered, did not match the
// subscriber's filter, or was named in a gaps item (below). Records of one post share a key (the post id), hence
// a partition, so the order of a post's comments is the topic's; comments of
// different posts may interleave differently on each read.
//
// Retention can delete records before they are read: those of a resume
// position older than the topic retains, and those the gateway's own
// reader (the hub, or a catch-up) did not get to in time, say after it
// could not reach Kafka for longer than the topic retains. Either way the
// subscriber is told, with a gaps item naming the deleted offsets (whatever
// its filter, since they may hold any post's comments), and the stream
// goes on after them; nothing is skipped silently.
//
// Each subscriber has a bounded buffer. When the hub finds it full, the
// subscriber is dropped (ErrSlow) rather than let it hold the hub back or
// grow memory; it can resume from its last position.
package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/schemas"
)

// Errors of Subscribe and Next.
var (
	// ErrSlow: the subscriber's buffer was full; it was dropped.
	ErrSlow = errors.New("stream: the client did not keep up and was dropped")
	// ErrClosed: the hub stopped (shutdown).
	ErrClosed = errors.New("stream: closed")
	// ErrIdle: nothing arrived within Next's idle time.
	ErrIdle = errors.New("stream: idle")
)

// UnavailableError says why the stream cannot serve: which part is down.
type UnavailableError struct {
	Part string // "kafka" or "schema registry"
	Err  error
}

func (e *UnavailableError) Error() string { return e.Part + " is unavailable: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Filter selects comments; empty fields match everything.
type Filter struct {
	PostID string // canonical lower-case UUID
	Name   string // exact
}

// Match reports whether e passes f.
func (f Filter) Match(e *Event) bool {
	return (f.PostID == "" || e.PostID == f.PostID) && (f.Name == "" || e.Name == f.Name)
}

// Comment is a streamed comment in the API's JSON: the list's Comment
// without ingested_at, since a streamed comment may not be stored yet.
type Comment struct {
	ID        string `json:"id"`
	PostID    string `json:"post_id"`
	Name      string `json:"name"`
	Text      string `json:"text"`
	Address   string `json:"address"`
	CreatedAt string `json:"created_at"`
	TraceID   string `json:"trace_id,omitempty"`
}

// TimeFormat renders instants as the API does (api.TimeFormat is this):
// RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Event is one decoded record, shared by every subscriber (read-only); or,
// with Gaps set (and only Pos besides), a subscriber's notice that the hub
// fell behind the topic's retention.
type Event struct {
	Partition int32
	Offset    int64
	PostID    string
	Name      string
	JSON      []byte    // the Comment, compact JSON, one line
	Produced  time.Time // the record's timestamp
	// Pos is the hub's position right after this record.
	Pos []int64
	// Gaps, for a notice, are the records the subscriber cannot get.
	Gaps []Gap
}

// Gap is a range of offsets of a partition that a subscriber cannot get:
// retention deleted them before it (or the hub reading for it) got there.
type Gap struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from_offset"`
	To        int64 `json:"to_offset"` // exclusive
}

// Item is what a subscription yields: a comment, or the gaps it could not
// fill: first, when the resume position is older than the topic retains;
// or at any point, when the gateway's reader fell behind retention.
type Item struct {
	Event *Event // nil for a gaps item
	Gaps  []Gap
	// Pos is the subscriber's position after this item.
	Pos []int64
}

// event decodes a record and renders it; the error is a
// *schemas.DecodeError.
func event(dec func([]byte) (schemas.Comment, error), r *kgo.Record) (*Event, error) {
	ev, c, err := decodeEvent(dec, r)
	if err == nil {
		ev.render(c, r)
	}
	return ev, err
}

// decodeEvent decodes a record into an event without its JSON: enough for
// Filter.Match, so that a reader that filters renders only what it keeps.
func decodeEvent(dec func([]byte) (schemas.Comment, error), r *kgo.Record) (*Event, schemas.Comment, error) {
	c, err := dec(r.Value)
	if err != nil {
		return nil, c, err
	}
	return &Event{Partition: r.Partition, Offset: r.Offset, PostID: c.PostID, Name: c.Name, Produced: r.Timestamp}, c, nil
}

// render sets e.JSON: the comment c of record r in the API's JSON.
func (e *Event) render(c schemas.Comment, r *kgo.Record) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(Comment{ // strings and a formatted time: cannot fail
		ID: c.ID, PostID: c.PostID, Name: c.Name, Text: c.Text, Address: c.Address,
		CreatedAt: c.CreatedAt.UTC().Format(TimeFormat),
		TraceID:   traceID(r),
	})
	e.JSON = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// traceID is the trace ID of the record's W3C traceparent header, if it
// is a valid one (read by the same propagator and record carrier the
// services use to continue traces).
func traceID(r *kgo.Record) string {
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), kotel.NewRecordCarrier(r)))
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// advance sets pos[p] to off+1, growing pos if needed, and returns pos.
func advance(pos []int64, p int32, off int64) []int64 {
	for int(p) >= len(pos) {
		pos = append(pos, 0)
	}
	pos[p] = off + 1
	return pos
}

// atLeast reports whether a >= b in every partition of b (a missing
// partition of a counts as 0).
func atLeast(a, b []int64) bool {
	for p, o := range b {
		var ao int64
		if p < len(a) {
			ao = a[p]
		}
		if ao < o {
			return false
		}
	}
	return true
}

// SkippedEvent is the data of a `skipped` event.
type SkippedEvent struct {
	Skipped int64  `json:"skipped"`
	Detail  string `json:"detail"`
	Gaps    []Gap  `json:"gaps"`
}

// records is the number of records in gaps.
func records(gaps []Gap) int64 {
	var n int64
	for _, g := range gaps {
		n += g.To - g.From
	}
	return n
}

// Skipped describes gaps for a client.
func Skipped(gaps []Gap) SkippedEvent {
	n := records(gaps)
	return SkippedEvent{Skipped: n, Gaps: gaps, Detail: fmt.Sprintf(
		"The topic's retention deleted %d records (of any post) before this stream could read them (the resume position was older than the topic retains, or the gateway fell behind); they are skipped and the stream continues after them.", n)}
}

// ErrorEvent is the data of an `error` event, sent before the gateway ends
// a stream.
type ErrorEvent struct {
	Reason string `json:"reason"` // slow, shutdown
	Detail string `json:"detail"`
}
