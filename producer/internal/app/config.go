package app

import (
	"fmt"
	"math"
	"time"

	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

// defaultHTTPAddr is where the ops endpoints listen (and healthcheck probes).
const defaultHTTPAddr = ":9091"

// Config is the producer's configuration, from environment variables and
// matching flags (see --help).
type Config struct {
	Rate  float64
	Count int64
	Posts int
	Seed  int64

	Kafka           kafkaconn.Config
	Topic           string
	Compression     string
	Linger          time.Duration
	DeliveryTimeout time.Duration
	AutoRegister    bool
	StartupTimeout  time.Duration
	ShutdownTimeout time.Duration

	HTTPAddr string
	Progress string
}

// Progress modes.
const (
	ProgressAuto  = "auto"
	ProgressBar   = "bar"
	ProgressPlain = "plain"
	ProgressOff   = "off"
)

// declare lists every variable, in the order --help shows them.
func (c *Config) declare(s *config.Set) {
	s.Float(&c.Rate, "PRODUCER_RATE", 20, "events per second, 0 = as fast as possible", nonNegative)
	s.Int64(&c.Count, "PRODUCER_COUNT", 0, "events to produce, then exit once all are acknowledged; 0 = until stopped", config.Min(0))
	s.Int(&c.Posts, "PRODUCER_POSTS", 200, "size of the pool of posts (post_id) comments attach to", config.Min(1), config.Max(10_000_000))
	s.Int64(&c.Seed, "PRODUCER_SEED", 0, "seed for reproducible comments and ids, 0 = random (the seed used is logged)", config.Min(0))
	c.Kafka.Declare(s)
	s.String(&c.Topic, "KAFKA_TOPIC", schemas.Topic, "topic to produce to", config.NotEmpty)
	s.Enum(&c.Compression, "KAFKA_COMPRESSION", "zstd", "batch compression", produce.Compressions...)
	s.Duration(&c.Linger, "KAFKA_LINGER", 5*time.Millisecond, "how long a partition's batch waits for more records (at most 1m)", durationIn(0, time.Minute))
	s.Duration(&c.DeliveryTimeout, "KAFKA_DELIVERY_TIMEOUT", 30*time.Second, "an event not acknowledged within this fails (at least 1s; retries are bounded too)", durationIn(time.Second, 24*time.Hour))
	s.Bool(&c.AutoRegister, "SCHEMA_AUTO_REGISTER", true, "register the schema (with a BACKWARD check); false = it must already be registered")
	s.Duration(&c.StartupTimeout, "STARTUP_TIMEOUT", 60*time.Second, "how long to retry the brokers and the registry at startup", config.Positive)
	s.Duration(&c.ShutdownTimeout, "SHUTDOWN_TIMEOUT", 10*time.Second, "on SIGTERM/SIGINT, how long to flush buffered events", config.Positive)
	s.String(&c.HTTPAddr, "HTTP_ADDR", defaultHTTPAddr, "listen address of /healthz, /readyz and /metrics", cli.HostPort)
	s.Enum(&c.Progress, "PROGRESS", ProgressAuto, "progress display on stderr: auto = a bar on a terminal when PRODUCER_COUNT > 0, plain lines otherwise", ProgressAuto, ProgressBar, ProgressPlain, ProgressOff)
}

func nonNegative(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("must be a number >= 0, got %v", v)
	}
	return nil
}

func durationIn(lo, hi time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("must be between %s and %s, got %s", lo, hi, d)
		}
		return nil
	}
}
