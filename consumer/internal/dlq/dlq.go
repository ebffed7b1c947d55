// Package dlq dead-letters poison records: records that can never be stored
// (bad framing, unknown schema, undecodable, invalid) go to the dead-letter
// topic unchanged, with headers saying why and where they came from, so that
// their partition keeps flowing and nothing is silently dropped.
package dlq

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The headers of a dead-lettered record.
const (
	HeaderClass     = "error.class"      // schemas.ErrorClass, e.g. "bad_framing"
	HeaderMessage   = "error.message"    // the decode error
	HeaderTopic     = "source.topic"     // where the record was consumed from
	HeaderPartition = "source.partition" // decimal
	HeaderOffset    = "source.offset"    // decimal
	HeaderGroup     = "consumer.group"   // the consumer group that gave up on it
	HeaderTime      = "dlq.time"         // RFC 3339, when it was dead-lettered
)

// maxMessage bounds error.message: a decode error can quote input.
const maxMessage = 1024

// Letter is a poison record and why.
type Letter struct {
	Record *kgo.Record
	Class  string
	Err    error
}

// Record is the dead-letter record for l: the original key, value and
// headers, plus the DLQ headers.
func Record(topic, group string, l Letter, now time.Time) *kgo.Record {
	src := l.Record
	msg := ""
	if l.Err != nil {
		msg = l.Err.Error()
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	headers := make([]kgo.RecordHeader, 0, len(src.Headers)+7)
	headers = append(headers, src.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderClass, Value: []byte(l.Class)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.FormatInt(int64(src.Partition), 10))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		kgo.RecordHeader{Key: HeaderGroup, Value: []byte(group)},
		kgo.RecordHeader{Key: HeaderTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{
		Topic:   topic,
		Key:     src.Key,
		Value:   src.Value,
		Headers: headers,
	}
}

// Header returns the value of the last header named key, and whether there
// is one.
func Header(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// Writer produces dead letters and waits for the brokers to acknowledge
// them (acks=all), so that the source offset is committed only after its
// dead letter is durable.
type Writer struct {
	cl    *kgo.Client
	topic string
	group string
	now   func() time.Time
}

// NewWriter is a Writer on its own producer client built from opts (the
// connection options). The client is idempotent with acks=all, franz-go's
// defaults, stated here because the guarantee depends on them.
func NewWriter(opts []kgo.Opt, topic, group string) (*Writer, error) {
	opts = append(append([]kgo.Opt(nil), opts...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &Writer{cl: cl, topic: topic, group: group, now: time.Now}, nil
}

// Write produces the letters and waits until every one is acknowledged. On
// error some may have been written: writing them again duplicates them in
// the dead-letter topic, which is at-least-once.
func (w *Writer) Write(ctx context.Context, letters []Letter) error {
	if len(letters) == 0 {
		return nil
	}
	now := w.now()
	recs := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		recs[i] = Record(w.topic, w.group, l, now)
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d records to %s: %w", len(recs), w.topic, err)
	}
	return nil
}

// Close flushes nothing (writes are synchronous) and closes the client.
func (w *Writer) Close() { w.cl.Close() }
