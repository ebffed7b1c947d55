package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// apiTimeout bounds one API call of a test, retries included.
const apiTimeout = 2 * time.Minute

// attemptTimeout bounds one request.
const attemptTimeout = 30 * time.Second

// fetchJSON GETs u and decodes its 200 body into into, as a real client of
// the API does: a 503 (the gateway sends Retry-After with every one, as its
// spec declares) is retried after Retry-After, or with exponential backoff
// when there is none, until ctx is done. Any other status fails at once.
func fetchJSON(ctx context.Context, u string, into any) error {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		code, retryAfter, body, err := get(ctx, u)
		switch {
		case err != nil:
			return err
		case code == http.StatusOK:
			if err := json.Unmarshal(body, into); err != nil {
				return fmt.Errorf("GET %s: %w in %s", u, err, body)
			}
			return nil
		case code != http.StatusServiceUnavailable:
			return &statusError{url: u, code: code, body: string(body)}
		}
		wait := delay
		if retryAfter > 0 {
			wait = retryAfter
		}
		delay = min(2*delay, 5*time.Second)
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: still 503 after %d attempts: %w (last body %s)", u, attempt, ctx.Err(), body)
		case <-time.After(wait):
		}
	}
}

// get does one request; retryAfter is the Retry-After header in seconds, 0
// when absent.
func get(ctx context.Context, u string) (code int, retryAfter time.Duration, body []byte, err error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("GET %s: reading the body: %w", u, err)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, body, nil
}

type statusError struct {
	url  string
	code int
	body string
}

func (e *statusError) Error() string {
	return "GET " + e.url + ": status " + strconv.Itoa(e.code) + " " + e.body
}
