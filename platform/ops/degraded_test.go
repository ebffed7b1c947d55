package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/commentflow/commentflow/platform/ops"
)

// TestReadyzDegraded: a failing optional check is named in /readyz, which
// still answers 200 ("degraded"); a failing required check still wins.
func TestReadyzDegraded(t *testing.T) {
	ready := ops.NewReadiness()
	var kafka, mongo error = errors.New("kafka is unavailable: dial refused"), nil
	ready.Optional("kafka", func(context.Context) error { return kafka })
	ready.Probe("mongodb", func(context.Context) error { return mongo })
	get := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		ops.ReadyzHandler(ready).ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/readyz", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return rec.Code, body
	}
	code, body := get()
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusOK || body["status"] != "degraded" || checks["kafka"] != kafka.Error() || checks["mongodb"] != "ok" {
		t.Errorf("optional check failing: %d %v", code, body)
	}
	mongo = errors.New("mongo down")
	if code, body := get(); code != http.StatusServiceUnavailable || body["status"] != "not ready" {
		t.Errorf("required check failing too: %d %v", code, body)
	}
	kafka, mongo = nil, nil
	code, body = get()
	checks, _ = body["checks"].(map[string]any)
	if code != http.StatusOK || body["status"] != "ready" || checks["kafka"] != "ok" {
		t.Errorf("all passing: %d %v", code, body)
	}
}
