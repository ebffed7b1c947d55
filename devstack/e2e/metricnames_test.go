package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/observability"
	"github.com/commentflow/commentflow/devstack/procs"
	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas"
)

// metricUses maps each metric name the dashboard panels and the alerting
// rules use to where they use it.
func metricUses(t *testing.T) map[string][]string {
	t.Helper()
	uses := map[string][]string{}
	for _, p := range observability.Panels {
		for _, q := range p.Queries {
			for _, n := range observability.MetricNames(q.Expr) {
				uses[n] = append(uses[n], fmt.Sprintf("dashboard panel %q", p.Title))
			}
		}
	}
	root, err := procs.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(observability.AlertsFile)))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := observability.ParseRules(text)
	if err != nil {
		t.Fatalf("%s: %v", observability.AlertsFile, err)
	}
	for _, r := range rules {
		for _, n := range observability.MetricNames(r.Expr) {
			uses[n] = append(uses[n], "alert "+r.Alert)
		}
	}
	for _, n := range observability.SynthesizedMetrics {
		delete(uses, n)
	}
	return uses
}

// scrapeNames returns the sample names a /metrics endpoint exposes.
func scrapeNames(ctx context.Context, url string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

// Every metric a dashboard panel or an alerting rule uses must be exposed by
// a real service: the binaries run on the in-process infrastructure, with
// traffic that makes every labeled series appear (events, a poison record,
// API requests). A renamed metric fails here, naming the panel or alert to fix.
func TestDashboardAndAlertMetricsAreExposed(t *testing.T) {
	uses := metricUses(t)
	sys := start(t, system.Config{Consumers: 1, Rate: 50})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A poison record, so that the dead-letter counter has a series.
	produceRecords(ctx, t, sys, &kgo.Record{Topic: schemas.Topic, Key: []byte("poison"), Value: []byte("not avro")})

	exposed := map[string]string{} // name -> service
	var missing []string
	for {
		// API traffic for the gateway's request series.
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, sys.GatewayURL()+"/api/v1/comments?limit=1", nil); err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
		services := map[string]*procs.Proc{"producer": sys.Producer(), "gateway": sys.Gateway()}
		for i, c := range sys.Consumers() {
			services[fmt.Sprintf("consumer-%d", i+1)] = c
		}
		for name, p := range services {
			names, err := scrapeNames(ctx, sys.OpsURL(p)+"/metrics")
			if err != nil {
				continue // restarting; scrape again on the next round
			}
			for n := range names {
				exposed[n] = name
			}
		}
		missing = missing[:0]
		for n := range uses {
			if _, ok := exposed[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			sort.Strings(missing)
			var all []string
			for n := range exposed {
				all = append(all, n)
			}
			slices.Sort(all)
			for _, n := range missing {
				t.Errorf("%s uses metric %s, which no service exposes; similar exposed names: %v",
					strings.Join(uses[n], ", "), n, similar(n, all))
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// similar lists the exposed names of the same service (commentflow_<service>_)
// that share a word with the missing name, other than the unit and type
// suffixes, to point at a rename (dead_lettered_total -> dead_letters_total).
func similar(name string, exposed []string) []string {
	prefix, words := metricWords(name)
	var out []string
	for _, e := range exposed {
		p, ws := metricWords(e)
		if p == prefix && slices.ContainsFunc(ws, func(w string) bool { return slices.Contains(words, w) }) {
			out = append(out, e)
		}
	}
	return out
}

// metricWords splits commentflow_<service>_<words> into its prefix and
// words, leaving out the suffixes most names share.
func metricWords(name string) (prefix string, words []string) {
	parts := strings.Split(name, "_")
	if len(parts) > 2 && parts[0] == "commentflow" {
		prefix, parts = strings.Join(parts[:2], "_"), parts[2:]
	}
	for _, w := range parts {
		if !slices.Contains([]string{"total", "seconds", "bytes", "bucket", "sum", "count", "info"}, w) {
			words = append(words, w)
		}
	}
	return prefix, words
}

func TestSimilar(t *testing.T) {
	exposed := []string{
		"commentflow_consumer_dead_letters_total", "commentflow_consumer_documents_stored_total",
		"commentflow_gateway_streams_open", "commentflow_producer_ready", "commentflow_consumer_ready", "go_goroutines",
	}
	for name, want := range map[string][]string{
		"commentflow_consumer_dead_lettered_total": {"commentflow_consumer_dead_letters_total"},
		"commentflow_gateway_open_streams":         {"commentflow_gateway_streams_open"},
		"commentflow_producer_is_ready":            {"commentflow_producer_ready"},
		"commentflow_gateway_http_requests_total":  nil,
	} {
		if got := similar(name, exposed); !slices.Equal(got, want) {
			t.Errorf("similar(%q) = %q, want %q", name, got, want)
		}
	}
}
