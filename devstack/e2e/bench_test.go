package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/commentflow/commentflow/devstack/system"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// End-to-end performance on devstack (the real binaries over kfake, srfake
// and FerretDB on SQLite):
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./devstack/e2e
//
// Latency: at a fixed production rate, the time from a comment's created_at
// (set by the producer when it generates the event) to the moment it is
// first seen in the gateway's newest-first list, polled every 50 ms.
// Throughput: the producer unthrottled; events/s from the first event's
// creation to the last event stored.
//
// FerretDB uses no index and scans the collection on every sorted query, so
// these numbers are the stand-in's, not MongoDB's.

func BenchmarkEndToEndLatency(b *testing.B) {
	const rate, n = 100, 1500
	for b.Loop() {
		sys := start(b, system.Config{Consumers: 3, ProducerCount: n, Rate: rate})
		seen := map[string]time.Duration{}
		deadline := time.Now().Add(3 * time.Minute)
		for len(seen) < n && time.Now().Before(deadline) {
			var p page
			if err := fetchJSON(context.Background(), sys.GatewayURL()+"/api/v1/comments?limit=100", &p); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for _, c := range p.Items {
				if _, ok := seen[c.ID]; !ok {
					seen[c.ID] = now.Sub(c.CreatedAt)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A page holds the 100 newest: at 100/s polled every 50ms (plus
		// the query time), nothing is missed unless the API falls behind.
		if len(seen) < n*95/100 {
			b.Fatalf("saw %d of %d comments: the poll fell behind", len(seen), n)
		}
		lat := make([]time.Duration, 0, len(seen))
		for _, d := range seen {
			lat = append(lat, d)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(rate), "events/s-produced")
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		sys.Stop()
	}
}

func BenchmarkEndToEndThroughput(b *testing.B) {
	const n = 20000
	for b.Loop() {
		sys := start(b, system.Config{Consumers: 3, ProducerCount: n, Rate: 0})
		ctx := context.Background()
		coll := mongoColl(b, sys)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			got, err := coll.CountDocuments(ctx, bson.D{})
			if err == nil && got == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d stored after 5 minutes", got, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		end := time.Now()
		var first struct {
			CreatedAt time.Time `bson:"created_at"`
		}
		opts := options.FindOne().SetSort(bson.D{{Key: "created_at", Value: 1}})
		if err := coll.FindOne(ctx, bson.D{}, opts).Decode(&first); err != nil {
			b.Fatal(err)
		}
		elapsed := end.Sub(first.CreatedAt)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s-end-to-end")
		b.ReportMetric(float64(n), "events")
		sys.Stop()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
