package app

import (
	"fmt"
	"net/url"
	"time"

	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/mongoconn"
	"github.com/commentflow/commentflow/schemas/names"
)

// Defaults; the database and collection are the contract's (schemas).
const (
	DefaultHTTPAddr   = ":8000"
	DefaultDatabase   = names.Database
	DefaultCollection = names.Collection
)

// Config is the gateway's configuration, read once at startup.
type Config struct {
	HTTPAddr          string
	Mongo             mongoconn.Config // MONGODB_URI, MONGODB_DATABASE, MONGODB_COLLECTION
	CursorSecret      string
	CORSOrigins       []string
	DBTimeout         time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration

	// The comment stream (GET /api/v1/comments/stream).
	Kafka           kafkaconn.Config // KAFKA_BROKERS, KAFKA_TLS*, KAFKA_SASL_*, SCHEMA_REGISTRY_*
	Topic           string
	MaxStreams      int
	StreamBuffer    int
	StreamHeartbeat time.Duration
	StreamWrite     time.Duration
	StreamRetry     time.Duration
}

// declare lists every variable with its flag, default and description.
func (cfg *Config) declare(s *config.Set) {
	s.String(&cfg.HTTPAddr, "HTTP_ADDR", DefaultHTTPAddr, "address to serve the API, Swagger UI and ops endpoints on (host:port)", cli.HostPort)
	cfg.Mongo.Declare(s, DefaultDatabase, DefaultCollection)
	s.Secret(&cfg.CursorSecret, "GATEWAY_CURSOR_SECRET",
		fmt.Sprintf("HMAC key signing pagination cursors, at least %d bytes; share it between replicas (default: random per process)", cursor.MinSecretLen))
	s.List(&cfg.CORSOrigins, "GATEWAY_CORS_ORIGINS", "", `origins allowed cross-origin access, comma-separated, or * (default "": CORS off)`, checkOrigins)
	s.Duration(&cfg.DBTimeout, "GATEWAY_DB_TIMEOUT", 5*time.Second, "time limit of one request's database work", config.Positive)
	s.Duration(&cfg.ReadHeaderTimeout, "GATEWAY_READ_HEADER_TIMEOUT", 5*time.Second, "time limit to read a request's headers", config.Positive)
	s.Duration(&cfg.ReadTimeout, "GATEWAY_READ_TIMEOUT", 10*time.Second, "time limit to read a whole request", config.Positive)
	s.Duration(&cfg.WriteTimeout, "GATEWAY_WRITE_TIMEOUT", 15*time.Second, "time limit to write a response", config.Positive)
	s.Duration(&cfg.IdleTimeout, "GATEWAY_IDLE_TIMEOUT", 60*time.Second, "how long an idle keep-alive connection stays open", config.Positive)
	s.Int(&cfg.MaxHeaderBytes, "GATEWAY_MAX_HEADER_BYTES", 16384, "largest request header block accepted, in bytes", config.Min(1024), config.Max(1<<20))
	s.Duration(&cfg.ShutdownTimeout, "SHUTDOWN_TIMEOUT", 10*time.Second, "time to let in-flight requests finish on shutdown", config.Positive)
	cfg.Kafka.Declare(s)
	s.String(&cfg.Topic, "KAFKA_TOPIC", names.Topic, "topic the comment stream reads (without a consumer group)", config.NotEmpty)
	s.Int(&cfg.MaxStreams, "GATEWAY_MAX_STREAMS", 100, "most comment streams open at once in this process; more are answered 503", config.Min(1), config.Max(100000))
	s.Int(&cfg.StreamBuffer, "GATEWAY_STREAM_BUFFER", 256, "comments buffered per stream client; a client further behind is disconnected (it can resume)", config.Min(1), config.Max(100000))
	s.Duration(&cfg.StreamHeartbeat, "GATEWAY_STREAM_HEARTBEAT", 15*time.Second, "idle time after which a stream gets a keep-alive comment", config.Positive)
	s.Duration(&cfg.StreamWrite, "GATEWAY_STREAM_WRITE_TIMEOUT", 10*time.Second, "time limit to write one stream event; a client slower than that is disconnected", config.Positive)
	s.Duration(&cfg.StreamRetry, "GATEWAY_STREAM_RETRY", 2*time.Second, "reconnection delay advised to stream clients (SSE retry)", config.Positive)
}

// validate checks what single variables cannot.
func (cfg *Config) validate() error {
	if err := cfg.Kafka.Validate(); err != nil {
		return err
	}
	if cfg.CursorSecret != "" && len(cfg.CursorSecret) < cursor.MinSecretLen {
		return config.Errorf("GATEWAY_CURSOR_SECRET", "must be at least %d bytes, got %d", cursor.MinSecretLen, len(cfg.CursorSecret))
	}
	if cfg.WriteTimeout <= cfg.DBTimeout {
		return config.Errorf("GATEWAY_WRITE_TIMEOUT", "must be longer than GATEWAY_DB_TIMEOUT (%s), got %s", cfg.DBTimeout, cfg.WriteTimeout)
	}
	return nil
}

func checkOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			if len(origins) > 1 {
				return fmt.Errorf("* must be the only origin")
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%q is not an origin like https://example.com or http://localhost:3000", o)
		}
	}
	return nil
}
