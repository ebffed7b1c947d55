// Package dlq dead-letters poison records: records that can never be stored
// (bad framing, unknown schema, undecodable, invalid) go to the dead-letter
// topic unchanged, with headers saying why and where they came from, so that
// their partition keeps flowing and nothing is silently dropped. A record
// the dead-letter topic refuses for good is replaced by an envelope without
// its value (see Writer).
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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

	// An envelope (a dead letter without the original value, see Writer)
	// also has these.
	HeaderRefused = "dlq.refused" // why the dead-letter topic refused the whole record
	HeaderSize    = "source.size" // decimal, the original value's size in bytes
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
//
// Its producer's batch limit is the dead-letter topic's max.message.bytes,
// asked from the broker (franz-go's default, about 1 MB, is below Kafka's
// default topic limit, so a record the source topic accepted could never be
// dead-lettered). A record the dead-letter topic still refuses for good
// (see Refused) is replaced by an envelope: the same key and dead-letter
// headers plus HeaderRefused and HeaderSize, without the value and the
// original headers, so that the partition moves on and the record can
// still be found at its source offset.
type Writer struct {
	cl    *kgo.Client
	topic string
	group string
	now   func() time.Time
}

// NewWriter is a Writer on its own producer client built from opts (the
// connection options). The client is idempotent with acks=all, franz-go's
// defaults, stated here because the guarantee depends on them. It asks the
// broker for the topic's max.message.bytes first.
func NewWriter(ctx context.Context, opts []kgo.Opt, topic, group string) (*Writer, error) {
	limit, err := maxMessageBytes(ctx, opts, topic)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: max.message.bytes: %w", topic, err)
	}
	opts = append(append([]kgo.Opt(nil), opts...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(limit),
		kgo.BrokerMaxWriteBytes(max(limit+(1<<20), 100<<20)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &Writer{cl: cl, topic: topic, group: group, now: time.Now}, nil
}

// maxMessageBytes is the topic's max.message.bytes (the broker's default
// when the topic does not set it).
func maxMessageBytes(ctx context.Context, opts []kgo.Opt, topic string) (int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, err
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, err
	}
	if rc.Err != nil {
		return 0, rc.Err
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			n, err := strconv.ParseInt(*c.Value, 10, 32)
			if err != nil || n < 1024 {
				return 0, fmt.Errorf("unusable value %q", *c.Value)
			}
			return int32(n), nil
		}
	}
	return 0, fmt.Errorf("not in the topic's configuration")
}

// Refused reports whether err is a refusal of the dead-letter topic that
// retrying cannot heal: the record is too large, invalid, or the producer is
// not allowed to write.
func Refused(err error) bool {
	for _, e := range []error{
		kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage,
		kerr.InvalidTopicException, kerr.PolicyViolation,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Envelope is the dead letter that replaces l's when the topic refused it
// for good (why): the key and the dead-letter headers, with the refusal and
// the original value's size, but not the value nor the original headers.
func Envelope(topic, group string, l Letter, why error, now time.Time) *kgo.Record {
	r := Record(topic, group, l, now)
	reason := why.Error()
	if len(reason) > maxMessage {
		reason = reason[:maxMessage] + "…"
	}
	dlqHeaders := r.Headers[len(l.Record.Headers):]
	headers := make([]kgo.RecordHeader, 0, len(dlqHeaders)+2)
	headers = append(headers, dlqHeaders...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderRefused, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderSize, Value: []byte(strconv.Itoa(len(l.Record.Value)))},
	)
	r.Headers = headers
	r.Value = nil
	return r
}

// Write produces the letters and waits until every one is acknowledged. A
// letter the topic refuses for good (Refused) is replaced by its Envelope;
// Write returns how many were. On error some may have been written: writing
// them again duplicates them in the dead-letter topic, which is
// at-least-once.
func (w *Writer) Write(ctx context.Context, letters []Letter) (envelopes int, err error) {
	if len(letters) == 0 {
		return 0, nil
	}
	now := w.now()
	recs := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		recs[i] = Record(w.topic, w.group, l, now)
	}
	// ProduceSync's results come in the order the records completed, not
	// the order given: find each result's letter by its record.
	letterOf := make(map[*kgo.Record]Letter, len(recs))
	for i, r := range recs {
		letterOf[r] = letters[i]
	}
	var retry []*kgo.Record
	for _, res := range w.cl.ProduceSync(ctx, recs...) {
		switch {
		case res.Err == nil:
		case Refused(res.Err):
			retry = append(retry, Envelope(w.topic, w.group, letterOf[res.Record], res.Err, now))
		default:
			return 0, fmt.Errorf("produce %d records to %s: %w", len(recs), w.topic, res.Err)
		}
	}
	if len(retry) == 0 {
		return 0, nil
	}
	if err := w.cl.ProduceSync(ctx, retry...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce %d envelopes (the whole records were refused) to %s: %w", len(retry), w.topic, err)
	}
	return len(retry), nil
}

// Close flushes nothing (writes are synchronous) and closes the client.
func (w *Writer) Close() { w.cl.Close() }
