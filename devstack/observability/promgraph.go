package observability

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RateInterval replaces Grafana's $__rate_interval where a panel's query is
// run outside Grafana: four scrape intervals of the snapshot's 5s, rounded up
// to a minute, as Grafana would pick for a 5s scrape over a long range.
const RateInterval = "1m"

// PromQL is the query as Prometheus takes it: Grafana's $__rate_interval
// replaced by RateInterval.
func (q Query) PromQL() string {
	return strings.ReplaceAll(q.Expr, "$__rate_interval", RateInterval)
}

var legendTemplate = regexp.MustCompile(`\{\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\}\}`)

// GraphExpr is one PromQL expression that draws all of a panel's queries in a
// single Prometheus graph, the way the panel draws them in Grafana: each query
// gets its legend as a `series` label (label_replace), and the queries are
// joined with `or`. A legend that is only a template ("{{class}}") adds no
// label: the query's own labels name its series. $__rate_interval becomes
// RateInterval.
func GraphExpr(p Panel) string {
	parts := make([]string, 0, len(p.Queries))
	for _, q := range p.Queries {
		expr := q.PromQL()
		legend := strings.Join(strings.Fields(legendTemplate.ReplaceAllString(q.Legend, "")), " ")
		if legend != "" && len(p.Queries) > 1 {
			expr = `label_replace(` + expr + `, "series", ` + strconv.Quote(legend) + `, "", "")`
		}
		parts = append(parts, expr)
	}
	return strings.Join(parts, " or ")
}

// GraphURL is the address, under a Prometheus server's base URL, of its
// (classic) graph page drawing expr over the window that ends at end.
func GraphURL(base, expr string, window time.Duration, end time.Time) string {
	end = end.UTC()
	q := url.Values{}
	q.Set("g0.expr", expr)
	q.Set("g0.tab", "0")
	q.Set("g0.stacked", "0")
	q.Set("g0.range_input", strconv.Itoa(int(window.Round(time.Minute).Minutes()))+"m")
	q.Set("g0.end_input", end.Format("2006-01-02 15:04"))
	q.Set("g0.moment_input", end.Format("2006-01-02 15:04"))
	return strings.TrimRight(base, "/") + "/graph?" + q.Encode()
}
