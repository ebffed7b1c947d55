package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/store"
)

// BenchmarkListComments compares GET /api/v1/comments?limit=20 through the
// whole handler stack (router, kin-openapi validation, handler, store,
// JSON encoding, ETag) with the same page fetched directly with the
// driver, against the same seeded FerretDB, interleaved in one run. It
// reports both throughputs (one client, requests/s), p50/p99 latencies and
// gateway/direct, the throughput ratio (target >= 0.8).
//
//	go test ./internal/api -run '^$' -bench ListComments -benchtime 2000x
func BenchmarkListComments(b *testing.B) {
	coll := client.Database("commentflow").Collection("comments")
	h, err := api.NewServer(context.Background(), api.Options{Collection: coll, Spec: spec, Cursors: testCodec})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	direct := func() {
		cur, err := coll.Find(ctx, store.FilterDoc(store.Filter{}, nil), options.Find().SetSort(store.Sort).SetLimit(20))
		if err != nil {
			b.Fatal(err)
		}
		var page []store.Comment
		if err := cur.All(ctx, &page); err != nil || len(page) != 20 {
			b.Fatalf("direct: %d comments, %v", len(page), err)
		}
	}
	gateway := func() {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/comments?limit=20", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("gateway: %d %s", rec.Code, rec.Body)
		}
	}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	// Warm up connections and caches.
	for range 20 {
		direct()
		gateway()
	}
	var d, g []time.Duration
	i := 0
	for b.Loop() {
		// Alternate which goes first, so neither profits from the other.
		if i%2 == 0 {
			d = append(d, timed(direct))
			g = append(g, timed(gateway))
		} else {
			g = append(g, timed(gateway))
			d = append(d, timed(direct))
		}
		i++
	}
	rate := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, x := range ds {
			sum += x
		}
		return float64(len(ds)) / sum.Seconds()
	}
	pct := func(ds []time.Duration, p float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	dr, gr := rate(d), rate(g)
	b.ReportMetric(dr, "direct_req/s")
	b.ReportMetric(gr, "gateway_req/s")
	b.ReportMetric(gr/dr, "gateway/direct")
	b.ReportMetric(pct(d, .50), "direct_p50_ms")
	b.ReportMetric(pct(d, .99), "direct_p99_ms")
	b.ReportMetric(pct(g, .50), "gateway_p50_ms")
	b.ReportMetric(pct(g, .99), "gateway_p99_ms")
}

// BenchmarkRequestOverhead measures the stack's own cost, with no database
// work: routing, strict query parsing, kin-openapi validation and the
// problem document of a rejected request, next to a plain 200 of the
// same router (/healthz) as the baseline.
func BenchmarkRequestOverhead(b *testing.B) {
	h, err := api.NewServer(context.Background(), api.Options{
		Collection: client.Database("commentflow").Collection("comments"), Spec: spec, Cursors: testCodec,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, target string }{
		{"healthz", "/healthz"},
		{"validate_reject", "/api/v1/comments?limit=0&post_id=x&since=2025-01-01T00:00:00Z"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.target, nil)
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code >= 500 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
