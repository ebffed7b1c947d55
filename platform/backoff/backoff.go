// Package backoff is exponential backoff with full jitter, for failures that
// can heal (a broker, the registry or the database coming back).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing, jittered delays between Min and Max.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Default starts at 100ms and caps at 10s.
func Default() *Backoff { return &Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second} }

// Next is the delay before the next attempt: a random duration in
// [d/2, d] where d = Min * 2^attempt, capped at Max.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.attempt, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	b.attempt++
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter only spreads retries; it needs no cryptographic randomness
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Attempts is how many delays were handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Wait sleeps for Next or until ctx is done, and returns ctx.Err() then.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry calls fn until it succeeds, ctx is done, or fn's error is not
// retryable; it returns the last error.
func Retry(ctx context.Context, b *Backoff, retryable func(error) bool, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil {
			b.Reset()
			return nil
		}
		if retryable != nil && !retryable(err) {
			return err
		}
		if werr := b.Wait(ctx); werr != nil {
			return err
		}
	}
}
