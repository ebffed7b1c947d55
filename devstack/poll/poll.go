// Package poll waits in tests for a condition that becomes true by itself:
// records stored, a process up, a metric moved.
package poll

import (
	"testing"
	"time"
)

// Until asks cond every interval until it holds, and fails t when it still
// does not after within, naming what it waited for and the state cond
// reported last.
func Until(t testing.TB, what string, within, interval time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if state != "" {
				state = ": " + state
			}
			t.Fatalf("timed out waiting for %s%s", what, state)
		}
		time.Sleep(interval)
	}
}
