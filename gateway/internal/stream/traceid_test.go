package stream

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/schemas"
)

// A streamed comment carries the trace ID of its record's W3C traceparent
// header when there is a valid one, and none otherwise.
func TestEventTraceID(t *testing.T) {
	const tid = "4bf92f3577b34da6a50c2d0c2f5c6a1e"
	dec := func([]byte) (schemas.Comment, error) { return schemas.Comment{ID: "i", PostID: "p"}, nil }
	for header, want := range map[string]string{
		"00-" + tid + "-00f067aa0ba902b7-01": tid,
		"00-" + tid + "-00f067aa0ba902b7-00": tid, // not sampled: still its trace
		"":                                   "",
		"garbage":                            "",
		"00-4BF92F3577B34DA6A50C2D0C2F5C6A1E-00f067aa0ba902b7-01": "", // upper case is invalid
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "", // the invalid all-zero trace
		"00-" + tid[:31] + "x-00f067aa0ba902b7-01":                "",
	} {
		r := &kgo.Record{Value: []byte{0}}
		if header != "" {
			r.Headers = []kgo.RecordHeader{{Key: "other", Value: []byte("x")}, {Key: "traceparent", Value: []byte(header)}}
		}
		ev, err := event(dec, r)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			TraceID string `json:"trace_id"`
		}
		if err := json.Unmarshal(ev.JSON, &got); err != nil {
			t.Fatal(err)
		}
		if got.TraceID != want {
			t.Errorf("traceparent %q: trace_id %q in %s, want %q", header, got.TraceID, ev.JSON, want)
		}
	}
}
