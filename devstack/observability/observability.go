// Package observability defines the commentflow Grafana dashboard in typed Go
// (with the Grafana foundation SDK) and checks the Prometheus side of the
// compose profile `observability`: observability/prometheus/prometheus.yml
// and its alerting rules, observability/prometheus/alerts.yml.
//
// The dashboard JSON that Grafana provisions,
// observability/grafana/dashboards/commentflow.json, is generated from Panels:
//
//	go generate ./observability/   (in devstack/)
//
// A test fails while the committed file differs from what Panels generate;
// the end-to-end tests (devstack/e2e) scrape the real services and fail when
// a panel or an alert uses a metric name no service exposes.
package observability

//go:generate go run ./cmd/gendashboard

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"gopkg.in/yaml.v3"
)

// Paths of the generated and checked files, relative to the repository root.
const (
	DashboardFile        = "observability/grafana/dashboards/commentflow.json"
	PrometheusConfigFile = "observability/prometheus/prometheus.yml"
	AlertsFile           = "observability/prometheus/alerts.yml"
)

// DatasourceUID is the uid of the Prometheus datasource that
// observability/grafana/provisioning/datasources/prometheus.yml provisions.
const DatasourceUID = "prometheus"

// Query is one PromQL query of a panel. Expr may use Grafana's
// $__rate_interval; Legend is a Grafana legend format.
type Query struct {
	Expr, Legend string
}

// Kind is how a panel draws its queries.
type Kind int

// Panel kinds.
const (
	TimeSeries Kind = iota // lines over time
	Stat                   // the latest value, large
)

// Panel is one panel of the dashboard.
type Panel struct {
	Title, Description string
	Kind               Kind
	Unit               string // Grafana unit: "reqps", "s", "short", ...
	Queries            []Query
	Width              uint32 // of 24 columns
}

// Panels are the dashboard's panels, in reading order: each answers one of
// the questions an operator asks of the pipeline.
var Panels = []Panel{
	{
		Title: "Readiness", Kind: Stat, Width: 24,
		Description: "1 = ready (every /readyz check passes). consumer is the least ready replica; up is whether Prometheus can scrape the target at all.",
		Queries: []Query{
			{`min(commentflow_producer_ready)`, "producer"},
			{`min(commentflow_consumer_ready)`, "consumer"},
			{`min(commentflow_gateway_ready)`, "gateway"},
			{`min by (job) (up)`, "{{job}} up"},
		},
	},
	{
		Title: "Events produced / stored per second", Unit: "ops", Width: 12,
		Description: "Produced: acknowledged by the brokers. Stored: newly inserted into MongoDB. Duplicates: redeliveries skipped.",
		Queries: []Query{
			{`sum(rate(commentflow_producer_events_produced_total[$__rate_interval]))`, "produced"},
			{`sum(rate(commentflow_consumer_documents_stored_total[$__rate_interval]))`, "stored"},
			{`sum(rate(commentflow_consumer_duplicates_skipped_total[$__rate_interval]))`, "duplicates"},
		},
	},
	{
		Title: "Dead-lettered per second, by class", Unit: "ops", Width: 12,
		Description: "Poison records written to comments.dlq. Normally none.",
		Queries: []Query{
			{`sum by (class) (rate(commentflow_consumer_dead_lettered_total[$__rate_interval]))`, "{{class}}"},
		},
	},
	{
		Title: "Consumer lag per partition", Unit: "short", Width: 12,
		Description: "Records not yet committed by the group (log end offset - committed offset).",
		Queries: []Query{
			{`max by (partition) (commentflow_consumer_lag)`, "partition {{partition}}"},
		},
	},
	{
		Title: "Batch insert latency (InsertMany)", Unit: "s", Width: 12,
		Queries: []Query{
			{`histogram_quantile(0.5, sum by (le) (rate(commentflow_consumer_write_latency_seconds_bucket[$__rate_interval])))`, "p50"},
			{`histogram_quantile(0.99, sum by (le) (rate(commentflow_consumer_write_latency_seconds_bucket[$__rate_interval])))`, "p99"},
		},
	},
	{
		Title: "Retries per second, by dependency", Unit: "ops", Width: 12,
		Description: "Failed attempts the consumer retried with backoff: MongoDB, Kafka, the Schema Registry.",
		Queries: []Query{
			{`sum by (dependency) (rate(commentflow_consumer_retries_total[$__rate_interval]))`, "{{dependency}}"},
		},
	},
	{
		Title: "Gateway requests per second, by route and status", Unit: "reqps", Width: 12,
		Queries: []Query{
			{`sum by (route, status) (rate(commentflow_gateway_http_requests_total[$__rate_interval]))`, "{{route}} {{status}}"},
		},
	},
	{
		Title: "Gateway latency", Unit: "s", Width: 12,
		Queries: []Query{
			{`histogram_quantile(0.5, sum by (le) (rate(commentflow_gateway_http_request_duration_seconds_bucket[$__rate_interval])))`, "p50"},
			{`histogram_quantile(0.99, sum by (le) (rate(commentflow_gateway_http_request_duration_seconds_bucket[$__rate_interval])))`, "p99"},
		},
	},
	{
		Title: "Gateway 5xx ratio", Unit: "percentunit", Width: 12,
		Description: "Share of requests answered 5xx (0 while there are none, rather than no data).",
		Queries: []Query{
			{`(sum(rate(commentflow_gateway_http_requests_total{status=~"5.."}[$__rate_interval])) or vector(0)) / sum(rate(commentflow_gateway_http_requests_total[$__rate_interval]))`, "5xx / all"},
		},
	},
	{
		Title: "Comment streams (SSE): open, events and slow disconnects per second", Unit: "short", Width: 12,
		Queries: []Query{
			{`sum(commentflow_gateway_streams_open)`, "open streams"},
			{`sum(rate(commentflow_gateway_stream_events_sent_total[$__rate_interval]))`, "events sent / s"},
			{`sum(rate(commentflow_gateway_stream_slow_disconnects_total[$__rate_interval]))`, "slow clients dropped / s"},
		},
	},
}

// Dashboard builds the dashboard and returns its JSON, as committed in
// DashboardFile.
func Dashboard() ([]byte, error) {
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(DatasourceUID)}
	// The v1 dashboard model: what Grafana's file provisioning reads (the v2
	// schema the SDK now prefers needs Grafana's v2 dashboard API).
	//nolint:staticcheck // SA1019: deprecated for v2, see above
	b := dashboard.NewDashboardBuilder("commentflow").
		Uid("commentflow").
		Description("The pipeline at a glance: throughput, dead letters, lag, MongoDB and gateway latency, readiness. Generated by devstack/observability; do not edit the JSON.").
		Tags([]string{"commentflow"}).
		Refresh("10s").
		Time("now-30m", "now").
		Timezone(common.TimeZoneBrowser).
		Readonly()
	var x, y uint32
	for i, p := range Panels {
		w := p.Width
		if x+w > 24 {
			x, y = 0, y+8
		}
		pos := dashboard.GridPos{X: x, Y: y, W: w, H: 8}
		x += w
		var panel cog.Builder[dashboard.Panel]
		switch p.Kind {
		case Stat:
			sb := stat.NewPanelBuilder().Id(uint32(i + 1)).Title(p.Title).Description(p.Description).
				Datasource(ds).GridPos(pos).Unit(p.Unit)
			for j, q := range p.Queries {
				sb = sb.WithTarget(query(ds, j, q))
			}
			panel = sb
		default:
			tb := timeseries.NewPanelBuilder().Id(uint32(i + 1)).Title(p.Title).Description(p.Description).
				Datasource(ds).GridPos(pos).Unit(p.Unit).Min(0)
			for j, q := range p.Queries {
				tb = tb.WithTarget(query(ds, j, q))
			}
			panel = tb
		}
		b = b.WithPanel(panel)
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build the dashboard: %w", err)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func query(ds common.DataSourceRef, i int, q Query) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		RefId("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i : i+1]).
		Datasource(ds).
		Expr(q.Expr).
		LegendFormat(q.Legend)
}

// Rule is an alerting rule of AlertsFile.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ParseRules reads the alerting rules of a Prometheus rule file.
func ParseRules(text []byte) ([]Rule, error) {
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(text, &f); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// MetricNames returns the metric names a PromQL expression selects, in order
// of appearance, without duplicates: identifiers that are not functions,
// aggregations, keywords, label names, strings or durations.
func MetricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || slices.Contains(promKeywords, strings.ToLower(name)) {
			continue // function or aggregation call, or keyword
		}
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // part of a number such as 1e3
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// SynthesizedMetrics are series Prometheus makes itself for every target;
// no service exposes them.
var SynthesizedMetrics = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}
