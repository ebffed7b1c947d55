package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/schemas"
)

// Counters with labels exist at zero from the start, so the first dead
// letter of a class is a rise that rate() and increase() see (a series that
// appears at 1 is not), on the dashboard and in the DeadLetters alert.
func TestLabelledCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("# HELP commentflow_consumer_dead_lettered_total Poison records written to the dead-letter topic, by error class.\n" +
		"# TYPE commentflow_consumer_dead_lettered_total counter\n")
	for _, class := range []string{string(schemas.ClassAvroDecode), string(schemas.ClassBadFraming),
		string(schemas.ClassInvalid), store.ErrorClass, string(schemas.ClassUnknownSchema)} { // sorted, as gathered
		fmt.Fprintf(&want, "commentflow_consumer_dead_lettered_total{class=%q} 0\n", class)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "commentflow_consumer_dead_lettered_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "commentflow_consumer_retries_total"); err != nil || n != 3 {
		t.Errorf("retries_total has %d series at start (%v), want 3 (one per dependency)", n, err)
	}
}
