package app

import (
	"fmt"
	"os"
	"time"

	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/mongoconn"
	"github.com/commentflow/commentflow/schemas"
)

// Config is the consumer's configuration, read once at startup from
// environment variables (or their flags).
type Config struct {
	Kafka kafkaconn.Config // KAFKA_BROKERS, KAFKA_TLS*, KAFKA_SASL_*, SCHEMA_REGISTRY_*

	Topic          string
	DLQTopic       string
	Group          string
	InstanceID     string
	SessionTimeout time.Duration

	Mongo             mongoconn.Config // MONGODB_URI, MONGODB_DATABASE, MONGODB_COLLECTION
	MongoWriteConcern string

	BatchSize      int
	BatchTimeout   time.Duration
	FetchMaxBytes  int
	MaxPollRecords int
	MaxFutureSkew  time.Duration

	HTTPAddr        string
	StartupTimeout  time.Duration
	ShutdownTimeout time.Duration
}

// DefaultHTTPAddr is where the ops endpoints listen by default.
const DefaultHTTPAddr = ":9092"

// declare lists every variable with its default and description.
func (c *Config) declare(s *config.Set) {
	c.Kafka.Declare(s)
	s.String(&c.Topic, "KAFKA_TOPIC", schemas.Topic, "topic to consume comment events from", config.NotEmpty)
	s.String(&c.DLQTopic, "KAFKA_DLQ_TOPIC", schemas.DLQTopic, "dead-letter topic for records that can never be stored", config.NotEmpty)
	s.String(&c.Group, "CONSUMER_GROUP", schemas.ConsumerGroup, "Kafka consumer group shared by the replicas", config.NotEmpty)
	s.String(&c.InstanceID, "CONSUMER_INSTANCE_ID", "",
		"static group membership: this replica's id, the same across its restarts and unique in the group; @hostname uses the host name (a compose replica's container id); empty: dynamic membership", checkInstanceID)
	s.Duration(&c.SessionTimeout, "KAFKA_SESSION_TIMEOUT", 45*time.Second,
		"group session timeout: how soon the group reassigns a crashed member's partitions (6s to 5m on default brokers)", checkSessionTimeout)
	c.Mongo.Declare(s, schemas.Database, schemas.Collection)
	s.String(&c.MongoWriteConcern, "MONGODB_WRITE_CONCERN", "majority",
		"write concern of inserts: majority or a number of members (0 = unacknowledged, gives up the delivery guarantee)", checkWriteConcern)
	s.Int(&c.BatchSize, "CONSUMER_BATCH_SIZE", 500, "store a batch when it has this many records...", config.Min(1), config.Max(100000))
	s.Duration(&c.BatchTimeout, "CONSUMER_BATCH_TIMEOUT", 250*time.Millisecond, "...or this long after its first record, whichever comes first", config.Positive)
	s.Int(&c.FetchMaxBytes, "KAFKA_FETCH_MAX_BYTES", 16<<20,
		"maximum bytes of one fetch; with 3 fetches buffered at most, it bounds the consumer's memory", config.Min(1024), config.Max(256<<20))
	s.Int(&c.MaxPollRecords, "KAFKA_MAX_POLL_RECORDS", 1000, "maximum records taken from the fetch buffer at once", config.Min(1))
	s.Duration(&c.MaxFutureSkew, "CREATED_AT_MAX_SKEW", schemas.DefaultMaxFutureSkew,
		"how far in the future a comment's created_at may be; later ones are dead-lettered as invalid", config.Positive)
	s.String(&c.HTTPAddr, "HTTP_ADDR", DefaultHTTPAddr, "listen address of /healthz, /readyz and /metrics", cli.HostPort)
	s.Duration(&c.StartupTimeout, "STARTUP_TIMEOUT", 60*time.Second, "how long to wait at startup for Kafka (and its topics) and MongoDB", config.Positive)
	s.Duration(&c.ShutdownTimeout, "SHUTDOWN_TIMEOUT", 10*time.Second, "on SIGTERM, how long to finish and commit the current batch and leave the group", config.Positive)
}

// validate checks what single variables cannot.
func (c *Config) validate() error {
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	if c.DLQTopic == c.Topic {
		return config.Errorf("KAFKA_DLQ_TOPIC", "must differ from KAFKA_TOPIC (%q)", c.Topic)
	}
	return nil
}

func checkSessionTimeout(d time.Duration) error {
	if d < time.Second || d > 30*time.Minute {
		return fmt.Errorf("must be between 1s and 30m, got %s", d)
	}
	return nil
}

// hostnameInstanceID is the CONSUMER_INSTANCE_ID that means "this host's
// name": a compose replica's hostname is its container id, which survives a
// restart of that container and differs between replicas, exactly what a
// static member's id must be. ('@' is not allowed in a literal id.)
const hostnameInstanceID = "@hostname"

// resolveInstanceID returns the group.instance.id that CONSUMER_INSTANCE_ID
// stands for: the host name for @hostname, else the value itself.
func resolveInstanceID(id string, hostname func() (string, error)) (string, error) {
	if id != hostnameInstanceID {
		return id, nil
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("%s: %w", hostnameInstanceID, err)
	}
	if h == "" {
		return "", fmt.Errorf("%s: the host name is empty", hostnameInstanceID)
	}
	if err := checkInstanceID(h); err != nil {
		return "", fmt.Errorf("%s: the host name %w", hostnameInstanceID, err)
	}
	return h, nil
}

// checkInstanceID applies Kafka's group.instance.id rules.
func checkInstanceID(id string) error {
	if id == hostnameInstanceID {
		_, err := resolveInstanceID(id, os.Hostname)
		return err
	}
	if len(id) > 249 {
		return fmt.Errorf("must be at most 249 characters long")
	}
	for _, r := range id {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (r < '0' || r > '9') && r != '.' && r != '_' && r != '-' {
			return fmt.Errorf("%q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

func checkWriteConcern(s string) error {
	_, err := store.ParseWriteConcern(s)
	return err
}
