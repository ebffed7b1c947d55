package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commentflow/commentflow/platform/backoff"
)

func TestNextGrowsWithJitterAndCaps(t *testing.T) {
	b := &backoff.Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for i, ceil := range []time.Duration{10, 20, 40, 80, 80, 80} {
		ceil *= time.Millisecond
		d := b.Next()
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: %s outside [%s, %s]", i, d, ceil/2, ceil)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after reset: %s", d)
	}
}

func TestRetry(t *testing.T) {
	b := &backoff.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
	calls := 0
	err := backoff.Retry(context.Background(), b, nil, func(context.Context) error {
		if calls++; calls < 4 {
			return errors.New("down")
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	permanent := errors.New("permanent")
	calls = 0
	err = backoff.Retry(context.Background(), b, func(err error) bool { return !errors.Is(err, permanent) }, func(context.Context) error {
		calls++
		return permanent
	})
	if !errors.Is(err, permanent) || calls != 1 {
		t.Fatalf("non-retryable: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = backoff.Retry(ctx, b, nil, func(context.Context) error { return errors.New("still down") })
	if err == nil || err.Error() != "still down" {
		t.Fatalf("on deadline: %v, want the last error", err)
	}
}
