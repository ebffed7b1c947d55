package dlq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/infra"
)

func TestRecordKeepsTheOriginalAndSaysWhy(t *testing.T) {
	src := &kgo.Record{Topic: "comments", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte{0xff, 1},
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Record("comments.dlq", "writers", Letter{Record: src, Class: "bad_framing", Err: errors.New("magic byte is 0xff")}, now)
	if r.Topic != "comments.dlq" || string(r.Key) != "k" || string(r.Value) != "\xff\x01" {
		t.Errorf("record %+v", r)
	}
	want := map[string]string{"trace": "abc", HeaderClass: "bad_framing", HeaderMessage: "magic byte is 0xff",
		HeaderTopic: "comments", HeaderPartition: "2", HeaderOffset: "41", HeaderGroup: "writers", HeaderTime: "2026-01-02T03:04:05Z"}
	for k, v := range want {
		if got, ok := Header(r, k); !ok || got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	long := Record("d", "g", Letter{Record: src, Class: "invalid", Err: errors.New(strings.Repeat("x", 5000))}, now)
	if msg, _ := Header(long, HeaderMessage); len(msg) > maxMessage+4 {
		t.Errorf("error.message is %d bytes", len(msg))
	}
}

// Write returns once the dead letters are acknowledged: they can be read
// back at once.
func TestWriterWaitsForAcknowledgement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})
	w, err := NewWriter([]kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, "comments.dlq", "writers")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var letters []Letter
	for i := range 3 {
		letters = append(letters, Letter{Record: &kgo.Record{Topic: "comments", Offset: int64(i), Value: []byte{byte(i)}}, Class: "avro_decode", Err: errors.New("bad")})
	}
	if err := w.Write(ctx, letters); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()), kgo.ConsumeTopics("comments.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	for len(got) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	for i, r := range got {
		if off, _ := Header(r, HeaderOffset); off != string(rune('0'+i)) || r.Value[0] != byte(i) {
			t.Errorf("dead letter %d: offset header %q, value %v", i, off, r.Value)
		}
	}

	// A topic that does not exist: Write fails within its context.
	bad, err := NewWriter([]kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, "no-such-topic", "writers")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := bad.Write(short, letters[:1]); err == nil {
		t.Errorf("write to a missing topic succeeded")
	}
}
