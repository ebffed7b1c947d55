package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The data path decides while it is failing or recently succeeded; an
// idle dependency is pinged.
func TestHealth(t *testing.T) {
	ctx := context.Background()
	pings := 0
	var pingErr error
	h := &health{ping: func(context.Context) error { pings++; return pingErr }}

	if err := h.check(ctx); err != nil || pings != 1 {
		t.Fatalf("never used: %v after %d pings, want a passing ping", err, pings)
	}
	if err := h.check(ctx); err != nil || pings != 1 {
		t.Fatalf("a passing ping vouches for a while: %v, %d pings", err, pings)
	}
	down := errors.New("down")
	h.fail(down)
	if err := h.check(ctx); !errors.Is(err, down) || pings != 1 {
		t.Fatalf("failing: %v, %d pings; want the data path's error without a ping", err, pings)
	}
	if !h.ok() {
		t.Errorf("ok after a failure does not report the recovery")
	}
	if err := h.check(ctx); err != nil || pings != 1 {
		t.Fatalf("recovered: %v, %d pings", err, pings)
	}
	h.mu.Lock()
	h.lastOK = time.Now().Add(-2 * freshFor)
	h.mu.Unlock()
	pingErr = errors.New("unreachable")
	if err := h.check(ctx); !errors.Is(err, pingErr) || pings != 2 {
		t.Fatalf("idle and unreachable: %v, %d pings", err, pings)
	}
	h.fail(down)
	h.clear()
	if err := h.check(ctx); !errors.Is(err, pingErr) || pings != 3 {
		t.Fatalf("cleared but stale: %v, %d pings; want a ping", err, pings)
	}

	none := &health{}
	if err := none.check(ctx); err != nil {
		t.Errorf("no ping: %v", err)
	}
}
