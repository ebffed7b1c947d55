package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The gateway answers 503 with Retry-After when its database is slow (under
// -race on a busy machine, the stand-in database can answer after the
// gateway's timeout): the tests' API client retries as a real client does.
func TestAPIClientRetries503(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"title":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"items":[{"id":"x"}]}`))
	}))
	defer srv.Close()
	start := time.Now()
	var p page
	getJSON(t, srv.URL, &p)
	if len(p.Items) != 1 || calls.Load() != 3 {
		t.Errorf("got %+v after %d calls, want one item after 3", p, calls.Load())
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("retried after %s, want Retry-After (1s) honored twice", waited)
	}
}

// A gateway that stays unavailable: the client gives up at its deadline,
// saying why.
func TestAPIClientGivesUpAtTheDeadline(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable) // no Retry-After: backoff
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var p page
	err := fetchJSON(ctx, srv.URL, &p)
	if err == nil || !strings.Contains(err.Error(), "503") || calls.Load() < 2 {
		t.Errorf("fetchJSON = %v after %d calls, want a 503 error after retries", err, calls.Load())
	}
}
