package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStreamCORSPreflight: a page on an allowed origin may resume a stream
// cross-origin: the preflight allows the Last-Event-ID header.
func TestStreamCORSPreflight(t *testing.T) {
	h := newServer(t, serverOpts{cors: []string{"https://app.example"}})
	req := httptest.NewRequestWithContext(t.Context(), http.MethodOptions, "/api/v1/comments/stream", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "last-event-id")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if allow := rec.Header().Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(allow), "last-event-id") {
		t.Errorf("preflight allows headers %q, want Last-Event-ID among them", allow)
	}
}

// TestStreamWithoutHub: a server built without a stream source answers the
// stream with 503 problem+json rather than hang or 500.
func TestStreamWithoutHub(t *testing.T) {
	h := newServer(t, serverOpts{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/v1/comments/stream", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}
