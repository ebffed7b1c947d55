package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// What a handler answers for a failed database operation (issue 12): every
// failure that means "try again later" — the stand-in's spelling of an
// expired time limit among them, which answered 500 under load — is a 503
// problem with Retry-After; only a bug is a 500. store.Unavailable's own
// table (gateway/internal/store) holds every code; this one holds the
// issue's cases, as the driver returns them, through the handlers' path.
func TestDatabaseFailureAnswers(t *testing.T) {
	cmd := func(code int32, name, msg string) error {
		return mongo.CommandError{Code: code, Name: name, Message: msg}
	}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"FerretDB: time limit expired (InternalError)", cmd(1, "InternalError",
			"[msg_find.go:339 handler.handleMaxTimeMSError] context deadline exceeded"), http.StatusServiceUnavailable},
		{"FerretDB: maxTimeMS expired", cmd(50, "MaxTimeMSExpired",
			"Executor error during find command :: caused by :: operation exceeded time limit"), http.StatusServiceUnavailable},
		{"MongoDB: ExceededTimeLimit", cmd(262, "ExceededTimeLimit", "operation exceeded time limit"), http.StatusServiceUnavailable},
		{"interrupted", cmd(11601, "Interrupted", "operation was interrupted"), http.StatusServiceUnavailable},
		{"network", mongo.CommandError{Labels: []string{"NetworkError"},
			Wrapped: &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}}, http.StatusServiceUnavailable},
		{"no server", topology.ServerSelectionError{Wrapped: errors.New("server selection timeout")}, http.StatusServiceUnavailable},
		{"pool exhausted", topology.WaitQueueTimeoutError{Wrapped: context.DeadlineExceeded}, http.StatusServiceUnavailable},
		{"a bug: bad query", cmd(2, "BadValue", "unknown operator: $foo"), http.StatusInternalServerError},
		{"a bug: FerretDB's other internal error", cmd(1, "InternalError", "[msg_find.go:123] unexpected nil document"),
			http.StatusInternalServerError},
	}
	s := &server{log: slog.New(slog.DiscardHandler)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.dbFailed(rec, httptest.NewRequest(http.MethodGet, "/api/v1/comments", nil), "list comments", tt.err)
			if rec.Code != tt.want {
				t.Fatalf("%v: answered %d, want %d", tt.err, rec.Code, tt.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != ProblemContentType {
				t.Errorf("Content-Type %q, want %q", ct, ProblemContentType)
			}
			if ra := rec.Header().Get("Retry-After"); (ra != "") != (tt.want == http.StatusServiceUnavailable) {
				t.Errorf("Retry-After %q with status %d: want it exactly on a 503", ra, rec.Code)
			}
		})
	}
}
