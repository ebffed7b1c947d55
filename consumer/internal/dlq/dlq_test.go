package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
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

// startWriter starts the infrastructure and a Writer to its comments.dlq,
// closed when the test ends.
func startWriter(ctx context.Context, t *testing.T) (*infra.Stack, *Writer) {
	t.Helper()
	st := infra.StartT(t, infra.Options{})
	w, err := NewWriter(ctx, []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, "comments.dlq", "writers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return st, w
}

// Write returns once the dead letters are acknowledged: they can be read
// back at once.
func TestWriterWaitsForAcknowledgement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, w := startWriter(ctx, t)
	var letters []Letter
	for i := range 3 {
		letters = append(letters, Letter{Record: &kgo.Record{Topic: "comments", Offset: int64(i), Value: []byte{byte(i)}}, Class: "avro_decode", Err: errors.New("bad")})
	}
	if n, err := w.Write(ctx, letters); err != nil || n != 0 {
		t.Fatalf("Write: %d envelopes, %v", n, err)
	}
	got := kafkatest.ReadN(ctx, t, "comments.dlq", 3, kgo.SeedBrokers(st.KafkaAddr()))
	for i, r := range got {
		if off, _ := Header(r, HeaderOffset); off != string(rune('0'+i)) || r.Value[0] != byte(i) {
			t.Errorf("dead letter %d: offset header %q, value %v", i, off, r.Value)
		}
	}

	// A topic that does not exist: the writer cannot learn its limit.
	short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if bad, err := NewWriter(short, []kgo.Opt{kgo.SeedBrokers(st.KafkaAddr())}, "no-such-topic", "writers"); err == nil {
		bad.Close()
		t.Errorf("NewWriter on a missing topic succeeded")
	}
}

// What the dead-letter topic refuses for good is told apart from what can
// heal, and the envelope keeps everything but the value.
func TestRefusedAndEnvelope(t *testing.T) {
	for _, err := range []error{kerr.MessageTooLarge, fmt.Errorf("produce: %w (uncompressed_bytes=2000000)", kerr.MessageTooLarge),
		kerr.InvalidRecord, kerr.TopicAuthorizationFailed} {
		if !Refused(err) {
			t.Errorf("Refused(%v) = false", err)
		}
	}
	for _, err := range []error{kerr.NotLeaderForPartition, kerr.RequestTimedOut, context.DeadlineExceeded, errors.New("dial: refused")} {
		if Refused(err) {
			t.Errorf("Refused(%v) = true", err)
		}
	}
	src := &kgo.Record{Topic: "comments", Partition: 2, Offset: 7, Key: []byte("k"), Value: make([]byte, 5000),
		Headers: []kgo.RecordHeader{{Key: "big", Value: make([]byte, 100)}}}
	env := Envelope("d", "g", Letter{Record: src, Class: "invalid", Err: errors.New("bad")}, kerr.MessageTooLarge, time.Now())
	h := func(k string) string { v, _ := Header(env, k); return v }
	if env.Value != nil || string(env.Key) != "k" || h("big") != "" || h(HeaderSize) != "5000" ||
		h(HeaderOffset) != "7" || h(HeaderPartition) != "2" || h(HeaderClass) != "invalid" || !strings.Contains(h(HeaderRefused), "MESSAGE_TOO_LARGE") {
		t.Errorf("envelope %+v", env)
	}
}

// ProduceSync reports results in the order they complete, not the order of
// the records: a letter refused at once by the client (too large for the
// batch limit) completes before a letter ahead of it that waits for the
// broker. The envelope must replace the refused letter, not whichever
// letter happened to be first.
func TestWriteEnvelopesTheLetterThatWasRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, w := startWriter(ctx, t)
	letter := func(off int64, size int) Letter {
		return Letter{Record: &kgo.Record{Topic: "comments", Offset: off, Key: []byte("k"), Value: make([]byte, size)},
			Class: "bad_framing", Err: errors.New("bad")}
	}
	const fits, refused = 10, 2 << 20 // above any topic limit
	n, err := w.Write(ctx, []Letter{letter(0, fits), letter(1, refused)})
	if err != nil || n != 1 {
		t.Fatalf("Write: %d envelopes, %v; want 1, nil", n, err)
	}
	got := kafkatest.ReadN(ctx, t, "comments.dlq", 2, kgo.SeedBrokers(st.KafkaAddr()))
	seen := map[string]int{}
	for _, r := range got {
		off, _ := Header(r, HeaderOffset)
		if seen[off]++; seen[off] > 1 {
			t.Errorf("two dead letters for offset %s", off)
		}
		size, enveloped := Header(r, HeaderSize)
		switch off {
		case "0":
			if enveloped || len(r.Value) != fits {
				t.Errorf("offset 0 (fits): %d value bytes, size header %q; want the whole record", len(r.Value), size)
			}
		case "1":
			if !enveloped || size != strconv.Itoa(refused) || len(r.Value) != 0 {
				t.Errorf("offset 1 (refused): %d value bytes, size header %q; want an envelope of %d", len(r.Value), size, refused)
			}
		default:
			t.Errorf("dead letter for offset %q", off)
		}
	}
}
