// Package produce puts comments on the topic: the franz-go producer options
// (idempotent, acks=all, linger, compression, bounded retries), an
// allocation-light asynchronous produce path with Prometheus metrics, and a
// rate-controlled run loop.
package produce

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Compressions are the accepted KAFKA_COMPRESSION values.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// RecordRetries bounds the tries of one batch. With the idempotent producer
// franz-go only enforces it when that is safe (the batch was never sent, or
// its response was received), so it can never create duplicates or gaps.
const RecordRetries = 20

// DefaultMaxBuffered is how many records may wait for their acknowledgement
// at once (franz-go's default, said out loud); producing blocks beyond it.
const DefaultMaxBuffered = 10_000

// Config is how records are produced.
type Config struct {
	Topic           string        // KAFKA_TOPIC
	Compression     string        // KAFKA_COMPRESSION: none|gzip|snappy|lz4|zstd
	Linger          time.Duration // KAFKA_LINGER
	DeliveryTimeout time.Duration // KAFKA_DELIVERY_TIMEOUT
	MaxBuffered     int           // 0 = DefaultMaxBuffered
}

// Codec is the franz-go compression codec named by s.
func Codec(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q (want one of %s)", s, strings.Join(Compressions, ", "))
}

// ClientOpts are the producer's franz-go options; the connection options
// (brokers, TLS, SASL) come from kafkaconn and go before these.
func ClientOpts(cfg Config) ([]kgo.Opt, error) {
	codec, err := Codec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if cfg.Topic == "" {
		return nil, fmt.Errorf("no topic to produce to")
	}
	if cfg.DeliveryTimeout < time.Second {
		return nil, fmt.Errorf("delivery timeout must be at least 1s, got %s", cfg.DeliveryTimeout)
	}
	if cfg.Linger < 0 || cfg.Linger > time.Minute {
		return nil, fmt.Errorf("linger must be between 0 and 1m, got %s", cfg.Linger)
	}
	maxBuffered := cfg.MaxBuffered
	if maxBuffered <= 0 {
		maxBuffered = DefaultMaxBuffered
	}
	return []kgo.Opt{
		kgo.DefaultProduceTopic(cfg.Topic),
		// Idempotent writes are franz-go's default and require acks=all;
		// say both out loud. Per partition the records land exactly once
		// and in production order, retries included.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Keyed records go to murmur2(key) % partitions, as the Java
		// client does, so a post's comments share a partition.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(codec),
		// A record fails after this long unacknowledged, or this many
		// tries; the linger is added so that lingering never eats the
		// delivery budget of the first record of a batch.
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout + cfg.Linger),
		kgo.RecordRetries(RecordRetries),
		kgo.MaxBufferedRecords(maxBuffered),
		// A retriable produce error (a leader moved) waits for fresh
		// metadata; franz-go's default of at most one refresh per 5s
		// stalls a partition that long per error.
		kgo.MetadataMinAge(time.Second),
	}, nil
}
