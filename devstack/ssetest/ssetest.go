// Package ssetest is a Server-Sent Events client for tests, parsing a
// text/event-stream the way the WHATWG EventSource does: an id line sets
// the last event id when its block ends (even a block without data), a
// block with data dispatches an event, lines starting with ':' are
// comments. Reconnecting is the caller's: Open again with LastID.
package ssetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event is one dispatched event.
type Event struct {
	ID   string // the last event id in force when it was dispatched
	Type string // "message" when the block named none
	Data string
}

// Stream is an open event stream.
type Stream struct {
	Resp *http.Response
	// LastID is the last event id seen, to resume with.
	LastID string
	// Retry is the last retry advice in ms (0: none).
	Retry int
	// Comments counts comment lines (heartbeats) read.
	Comments int

	r *bufio.Reader
}

// Open requests url with Accept: text/event-stream and Last-Event-ID
// lastID (when not empty). A non-200 answer is returned as the response
// with its body read into the error.
func Open(ctx context.Context, url, lastID string) (*Stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, &StatusError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(body)}
	}
	return &Stream{Resp: resp, LastID: lastID, r: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// StatusError is a stream request answered with another status than 200.
type StatusError struct {
	Status      int
	ContentType string
	Body        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("stream answered %d (%s): %s", e.Status, e.ContentType, e.Body)
}

// Next returns the next dispatched event, or the read error (io.EOF when
// the server ended the stream).
func (s *Stream) Next() (Event, error) {
	for {
		ev, err := s.NextBlock()
		if err != nil || ev.Type != "" {
			return ev, err
		}
	}
}

// NextBlock returns what the next block (up to a blank line) dispatched:
// an event, or one with an empty Type when it only carried comments, an
// id or retry advice (a heartbeat).
func (s *Stream) NextBlock() (Event, error) {
	var typ, idBuf string
	var data strings.Builder
	idSet, hasData := false, false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return Event{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" { // dispatch
			if idSet {
				s.LastID = idBuf
			}
			if !hasData {
				return Event{ID: s.LastID}, nil
			}
			if typ == "" {
				typ = "message"
			}
			return Event{ID: s.LastID, Type: typ, Data: strings.TrimSuffix(data.String(), "\n")}, nil
		}
		if strings.HasPrefix(line, ":") {
			s.Comments++
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf, idSet = value, true
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil {
				s.Retry = n
			}
		}
	}
}

// Close ends the stream.
func (s *Stream) Close() error { return s.Resp.Body.Close() }

// Events reads the next n events of type typ; any other event is an
// error.
func (s *Stream) Events(typ string, n int) ([]Event, error) {
	out := make([]Event, 0, n)
	for len(out) < n {
		ev, err := s.Next()
		if err != nil {
			return out, fmt.Errorf("after %d of %d %s events: %w", len(out), n, typ, err)
		}
		if ev.Type != typ {
			return out, fmt.Errorf("after %d of %d %s events: unexpected %s event: %s", len(out), n, typ, ev.Type, ev.Data)
		}
		out = append(out, ev)
	}
	return out, nil
}

// OpenRetrying opens like Open, retrying a 503 (the gateway's stream
// reader not up yet, or the stream limit) with a short pause, as a real
// client does, for up to within.
func OpenRetrying(ctx context.Context, url, lastID string, within time.Duration) (*Stream, error) {
	deadline := time.Now().Add(within)
	for {
		s, err := Open(ctx, url, lastID)
		var se *StatusError
		if err == nil || !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
