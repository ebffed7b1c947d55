// Package backoff is exponential backoff with full jitter, for failures that
// can heal (a broker, the registry or the database coming back).
package backoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// WaitReady calls probe with backoff until it succeeds, for at most
// timeout (STARTUP_TIMEOUT; a deadline of ctx counts as that timeout too):
// the one startup policy of every service. fatal classifies a failure: a
// non-nil result is an error that waiting cannot cure (refused
// credentials, an untrusted certificate, a URL that is no registry),
// returned at once. Anything else is retried and logged as "<what> not
// ready, retrying"; when time is up the error says "<what> not ready
// within STARTUP_TIMEOUT=<timeout>" and wraps the last real cause (not the
// deadline that cut the last attempt short). If ctx is canceled first
// (stopped while starting), it returns ctx.Err().
func WaitReady(ctx context.Context, log *slog.Logger, what string, timeout time.Duration, fatal func(error) error, probe func(context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b := &Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	var cause error
	for {
		actx, cancelAttempt := context.WithTimeout(wctx, attemptTimeout)
		err := probe(actx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if ferr := fatal(err); ferr != nil {
			return ferr
		}
		if cause == nil || wctx.Err() == nil || !errors.Is(err, context.DeadlineExceeded) {
			cause = err
		}
		if wctx.Err() == nil {
			log.Warn(what+" not ready, retrying", "attempt", b.Attempts()+1, "err", err)
		}
		if b.Wait(wctx) != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return fmt.Errorf("%s not ready within STARTUP_TIMEOUT=%s: %w", what, timeout, cause)
		}
	}
}

// attemptTimeout bounds one startup probe, so that a retry (and its log
// line) comes at least this often while a dependency is down.
const attemptTimeout = 5 * time.Second
