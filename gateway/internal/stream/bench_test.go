package stream

import (
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/schemas"
)

// benchBuffer is the subscribers' buffer in the fan-out benchmark; the
// timer stops to empty the buffers every benchBuffer events, so nothing is
// dropped and no reader competes for the CPU while timed.
const benchBuffer = 2048

func drain[T any](chs []chan T) {
	for _, ch := range chs {
		for len(ch) > 0 {
			<-ch
		}
	}
}

// BenchmarkFanOut is the hub's cost to hand one decoded comment to each
// subscriber (position bookkeeping, filter, non-blocking send), against a
// raw baseline in the same run: the same event sent to as many buffered
// channels under a mutex, nothing else. Reported per event per subscriber:
//
//	go test -run '^$' -bench FanOut ./gateway/internal/stream
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("hub/subscribers=%d", subs), func(b *testing.B) {
			h, err := NewHub(Options{Decoder: schemas.NewDecoder(nil), Buffer: benchBuffer})
			if err != nil {
				b.Fatal(err)
			}
			h.pos, h.state = make([]int64, 3), nil
			chs := make([]chan *Event, 0, subs)
			for i := range subs {
				f := Filter{}
				if i%2 == 1 {
					f.PostID = "p" // half filter on the event's post
				}
				s, _, err := h.join(f, nil)
				if err != nil || s == nil {
					b.Fatal("join", err)
				}
				chs = append(chs, s.ch)
			}
			r := &kgo.Record{Partition: 1}
			for i := 0; b.Loop(); i++ {
				if i%benchBuffer == 0 {
					b.StopTimer()
					drain(chs)
					b.StartTimer()
				}
				r.Offset = int64(i)
				h.publish(r, &Event{Partition: 1, Offset: int64(i), PostID: "p", JSON: []byte(`{}`)}, nil)
			}
			if n := h.Subscribers(); n != subs {
				b.Fatalf("%d of %d subscribers left", n, subs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/event/subscriber")
		})
		b.Run(fmt.Sprintf("raw/subscribers=%d", subs), func(b *testing.B) {
			var mu sync.Mutex
			chs := make([]chan *Event, subs)
			for i := range chs {
				chs[i] = make(chan *Event, benchBuffer)
			}
			for i := 0; b.Loop(); i++ {
				if i%benchBuffer == 0 {
					b.StopTimer()
					drain(chs)
					b.StartTimer()
				}
				ev := &Event{Partition: 1, Offset: int64(i), PostID: "p", JSON: []byte(`{}`)}
				mu.Lock()
				for _, ch := range chs {
					select {
					case ch <- ev:
					default:
						b.Fatal("dropped")
					}
				}
				mu.Unlock()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/event/subscriber")
		})
	}
}
