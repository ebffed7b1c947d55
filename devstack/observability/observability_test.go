package observability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/devstack/procs"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := procs.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

func TestDashboardFileIsUpToDate(t *testing.T) {
	want, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(repoFile(t, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what Panels generate: run `go generate ./observability/` in devstack/ and commit the result", DashboardFile)
	}
}

func TestDashboardAnswersTheOperatorsQuestions(t *testing.T) {
	var exprs []string
	for _, p := range Panels {
		if len(p.Queries) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Queries {
			exprs = append(exprs, q.Expr)
		}
	}
	// answers: some query selects the metric (exactly) and has every part.
	answers := func(metric string, parts ...string) bool {
		return slices.ContainsFunc(exprs, func(e string) bool {
			if !slices.Contains(MetricNames(e), metric) {
				return false
			}
			for _, p := range parts {
				if !strings.Contains(e, p) {
					return false
				}
			}
			return true
		})
	}
	// The questions of issue 15, each with the metric and the grouping or
	// quantile that answers it.
	for _, q := range []struct {
		question, metric string
		parts            []string
	}{
		{"events produced/s", "commentflow_producer_events_produced_total", []string{"rate("}},
		{"stored/s", "commentflow_consumer_documents_stored_total", []string{"rate("}},
		{"dead-lettered/s by class", "commentflow_consumer_dead_lettered_total", []string{"rate(", "by (class)"}},
		{"lag per partition", "commentflow_consumer_lag", []string{"by (partition)"}},
		{"batch insert latency p50", "commentflow_consumer_write_latency_seconds_bucket", []string{"histogram_quantile(0.5,"}},
		{"batch insert latency p99", "commentflow_consumer_write_latency_seconds_bucket", []string{"histogram_quantile(0.99,"}},
		{"registry and MongoDB retries", "commentflow_consumer_retries_total", []string{"rate(", "by (dependency)"}},
		{"gateway requests/s by route and status", "commentflow_gateway_http_requests_total", []string{"rate(", "by (route, status)"}},
		{"gateway p50", "commentflow_gateway_http_request_duration_seconds_bucket", []string{"histogram_quantile(0.5,"}},
		{"gateway p99", "commentflow_gateway_http_request_duration_seconds_bucket", []string{"histogram_quantile(0.99,"}},
		{"producer readiness", "commentflow_producer_ready", nil},
		{"consumer readiness", "commentflow_consumer_ready", nil},
		{"gateway readiness", "commentflow_gateway_ready", nil},
		{"every scrape target up (Redpanda included)", "up", []string{"by (job)"}},
	} {
		if !answers(q.metric, q.parts...) {
			t.Errorf("no panel answers %q (no query selects %s with %q)", q.question, q.metric, q.parts)
		}
	}
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (class) (rate(a_total[$__rate_interval]))`:                            {"a_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{job="y"}[5m])))`:         {"x_bucket"},
		`sum(rate(r{status=~"5.."}[5m])) / sum(rate(r[5m])) > 0.01`:                   {"r"},
		`a == 0 or b == 0 or up{job=~"p|q"} == 0`:                                     {"a", "b", "up"},
		`sum(l) > 0 and deriv(sum(l)[5m:30s]) > 0`:                                    {"l"},
		`sum by (class) (d) > 0 unless sum by (class) (d offset 10m)`:                 {"d"},
		`min by (job) (up) * 1e3 + on(instance) group_left(version) info{a="b"}`:      {"up", "info"},
		`label_replace(m, "dst", "$1", "src", "(.*)") or vector(0) or absent(nope_1)`: {"m", "nope_1"},
	} {
		if got := MetricNames(expr); !slices.Equal(got, want) {
			t.Errorf("MetricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestAlertRules(t *testing.T) {
	text, err := os.ReadFile(repoFile(t, AlertsFile))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules(text)
	if err != nil {
		t.Fatal(err)
	}
	// What an operator must be woken for, and for how long it must last.
	want := map[string]string{
		"ConsumerLagGrowing": "5m",
		"DeadLetters":        "",
		"ServiceNotReady":    "2m",
		"GatewayErrorRatio":  "5m",
	}
	got := map[string]string{}
	for _, r := range rules {
		got[r.Alert] = r.For
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("alert %s: needs a severity label and a summary", r.Alert)
		}
		if len(MetricNames(r.Expr)) == 0 {
			t.Errorf("alert %s: expression %q selects no metric", r.Alert, r.Expr)
		}
	}
	for name, f := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("no alert %s", name)
		} else if g != f {
			t.Errorf("alert %s: for = %q, want %q", name, g, f)
		}
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does) to check the Prometheus configuration and alerting rules")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	cmd.Dir = filepath.Dir(repoFile(t, PrometheusConfigFile))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The configuration loads (with the rule files it names), the rules parse,
// and the alerts fire when they should and only then (alerts_test.yml).
func TestPrometheusConfigAndRulesWithPromtool(t *testing.T) {
	runPromtool(t, "check", "config", filepath.Base(PrometheusConfigFile))
	runPromtool(t, "check", "rules", filepath.Base(AlertsFile))
	runPromtool(t, "test", "rules", "alerts_test.yml")
}

// Every panel's queries are valid PromQL once $__rate_interval is replaced,
// and so is the one graph of each panel that cmd/snapshot draws: promtool
// parses them all as recording rules.
func TestPanelQueriesAreValidPromQL(t *testing.T) {
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: panels\n    rules:\n")
	add := func(expr string) {
		fmt.Fprintf(&rules, "      - record: panel:query\n        expr: %s\n", strconv.Quote(expr))
	}
	for _, p := range Panels {
		for _, q := range p.Queries {
			add(q.PromQL())
		}
		add(GraphExpr(p))
	}
	file := filepath.Join(t.TempDir(), "panels.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", file)
}

func TestGraphExpr(t *testing.T) {
	for _, tc := range []struct {
		panel Panel
		want  string
	}{
		{Panel{Queries: []Query{{`sum by (class) (rate(d_total[$__rate_interval]))`, "{{class}}"}}},
			`sum by (class) (rate(d_total[1m]))`},
		{Panel{Queries: []Query{{`sum(a)`, "produced"}}}, `sum(a)`},
		{Panel{Queries: []Query{{`sum(a)`, "produced"}, {`min by (job) (up)`, "{{job}} up"}, {`sum by (route) (r)`, "{{route}}"}}},
			`label_replace(sum(a), "series", "produced", "", "") or label_replace(min by (job) (up), "series", "up", "", "") or sum by (route) (r)`},
	} {
		if got := GraphExpr(tc.panel); got != tc.want {
			t.Errorf("GraphExpr(%v)\n got %s\nwant %s", tc.panel.Queries, got, tc.want)
		}
	}
}

// The 5xx panel draws 0 while the gateway has answered no 5xx at all (the
// normal case), not "No data", which an operator cannot tell from a gateway
// that is not scraped. promtool evaluates the panel's query over requests
// that were all 200.
func TestErrorRatioPanelIsZeroWithoutErrors(t *testing.T) {
	i := slices.IndexFunc(Panels, func(p Panel) bool { return p.Title == "Gateway 5xx ratio" })
	if i < 0 {
		t.Fatal(`no panel "Gateway 5xx ratio"`)
	}
	dir := t.TempDir()
	rules := fmt.Sprintf("groups:\n  - name: panel\n    rules:\n      - record: panel:ratio\n        expr: %s\n",
		strconv.Quote(GraphExpr(Panels[i])))
	test := `rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'commentflow_gateway_http_requests_total{route="/api/v1/comments",status="200"}'
        values: '0+10x20'
    promql_expr_test:
      - expr: panel:ratio
        eval_time: 4m
        exp_samples:
          - labels: 'panel:ratio'
            value: 0
`
	for name, text := range map[string]string{"rules.yml": rules, "test.yml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runPromtool(t, "test", "rules", filepath.Join(dir, "test.yml"))
}
