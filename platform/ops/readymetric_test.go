package ops

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadinessMetric(t *testing.T) {
	r := NewReadiness("kafka")
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector("producer"))
	want := func(v string) {
		t.Helper()
		exp := "# HELP commentflow_producer_ready 1 when every readiness check passes (/readyz answers 200), else 0.\n" +
			"# TYPE commentflow_producer_ready gauge\ncommentflow_producer_ready " + v + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "commentflow_producer_ready"); err != nil {
			t.Error(err)
		}
	}
	want("0")
	r.Set("kafka", nil)
	want("1")
	r.Probe("mongodb", func(context.Context) error { return errors.New("down") })
	want("0")
}
