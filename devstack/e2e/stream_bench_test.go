package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/commentflow/commentflow/devstack/system"
)

// BenchmarkStreamLatency: at a fixed production rate, the time from a
// comment's created_at (set by the producer when it generates the event)
// to its arrival on an SSE stream of the gateway (the real binaries over
// kfake and srfake):
//
//	go test -run '^$' -bench StreamLatency -benchtime 1x ./devstack/e2e
func BenchmarkStreamLatency(b *testing.B) {
	const rate, n = 100, 1500
	for b.Loop() {
		sys := start(b, system.Config{NoProducer: true, Rate: rate})
		s := openStream(b, sys.GatewayURL()+streamPath, "")
		if _, err := s.NextBlock(); err != nil {
			b.Fatal(err)
		}
		if _, err := sys.StartProducer(n); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, n)
		for len(lat) < n {
			ev, err := s.Next()
			if err != nil {
				b.Fatalf("after %d events: %v", len(lat), err)
			}
			now := time.Now()
			var c struct {
				CreatedAt time.Time `json:"created_at"`
			}
			if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, now.Sub(c.CreatedAt))
		}
		_ = s.Close()
		slices.Sort(lat)
		b.ReportMetric(float64(rate), "events/s-produced")
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		sys.Stop()
	}
}
