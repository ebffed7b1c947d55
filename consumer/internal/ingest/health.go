package ingest

import (
	"context"
	"sync"
	"time"
)

// The readiness checks, one per dependency.
const (
	depMongo    = "mongodb"
	depKafka    = "kafka"
	depRegistry = "registry"
)

// Checks are the names of the readiness checks New registers.
var Checks = []string{depKafka, depMongo, depRegistry}

// freshFor is how long a success on the data path vouches for a dependency;
// past it, a readiness request pings the dependency instead.
const freshFor = 10 * time.Second

// health is what the data path last learned about one dependency. The data
// path is authoritative: while it is failing the check reports its error;
// while it succeeds recently the check passes without a round trip; when it
// has been idle the check pings, so an idle consumer still notices an
// outage.
type health struct {
	ping func(context.Context) error // nil: no ping, idle is healthy

	mu     sync.Mutex
	err    error
	lastOK time.Time
}

func (h *health) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
}

// ok records a success; it reports whether the dependency was failing.
func (h *health) ok() (recovered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recovered = h.err != nil
	h.err, h.lastOK = nil, time.Now()
	return recovered
}

// clear forgets a failure without vouching for the dependency: the next
// readiness request pings it unless a success was recent.
func (h *health) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = nil
}

// check is the readiness probe.
func (h *health) check(ctx context.Context) error {
	h.mu.Lock()
	err, last := h.err, h.lastOK
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if h.ping == nil || time.Since(last) < freshFor {
		return nil
	}
	if err := h.ping(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	if h.err == nil {
		h.lastOK = time.Now()
	}
	h.mu.Unlock()
	return nil
}
