// Package kafkaconn turns the connection settings shared by the producer and
// the consumer (brokers, TLS, SASL, schema registry) into franz-go client
// options, with validation that names the variable at fault.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/config"
)

// Config is the Kafka and schema registry connection.
type Config struct {
	Brokers       []string
	TLS           bool
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string

	RegistryURL      string
	RegistryUsername string
	RegistryPassword string
}

// Declare adds the connection variables to s.
func (c *Config) Declare(s *config.Set) {
	s.List(&c.Brokers, "KAFKA_BROKERS", "localhost:19092", "Kafka bootstrap brokers, comma-separated host:port", checkBrokers)
	s.Bool(&c.TLS, "KAFKA_TLS", false, "connect to the brokers over TLS (implied by any KAFKA_TLS_*_FILE)")
	s.String(&c.TLSCAFile, "KAFKA_TLS_CA_FILE", "", "PEM file of CAs to verify the brokers with (default: system roots)", checkFile)
	s.String(&c.TLSCertFile, "KAFKA_TLS_CERT_FILE", "", "PEM client certificate for mutual TLS", checkFile)
	s.String(&c.TLSKeyFile, "KAFKA_TLS_KEY_FILE", "", "PEM client key for mutual TLS", checkFile)
	s.Enum(&c.SASLMechanism, "KAFKA_SASL_MECHANISM", "", "SASL mechanism, empty for none", "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
	s.String(&c.SASLUsername, "KAFKA_SASL_USERNAME", "", "SASL user name")
	s.Secret(&c.SASLPassword, "KAFKA_SASL_PASSWORD", "SASL password")
	s.String(&c.RegistryURL, "SCHEMA_REGISTRY_URL", "http://localhost:18081", "Confluent-compatible schema registry URL", checkURL)
	s.String(&c.RegistryUsername, "SCHEMA_REGISTRY_USERNAME", "", "schema registry basic-auth user")
	s.Secret(&c.RegistryPassword, "SCHEMA_REGISTRY_PASSWORD", "schema registry basic-auth password")
}

// Validate checks what single variables cannot: combinations.
func (c *Config) Validate() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			return config.Errorf("KAFKA_TLS_CERT_FILE", "must be set together with KAFKA_TLS_KEY_FILE")
		}
		return config.Errorf("KAFKA_TLS_KEY_FILE", "must be set together with KAFKA_TLS_CERT_FILE")
	}
	if c.SASLMechanism != "" && (c.SASLUsername == "" || c.SASLPassword == "") {
		return config.Errorf("KAFKA_SASL_USERNAME", "KAFKA_SASL_MECHANISM=%s needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", c.SASLMechanism)
	}
	if _, err := c.tlsConfig(); err != nil {
		return err
	}
	return nil
}

func checkBrokers(brokers []string) error {
	if len(brokers) == 0 {
		return fmt.Errorf("must list at least one host:port")
	}
	for _, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			return fmt.Errorf("%q is not host:port", b)
		}
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("%q has no valid host", b)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q has no valid port", b)
		}
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

func checkFile(path string) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%q is a directory, not a PEM file", path)
	}
	return nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS && c.TLSCAFile == "" && c.TLSCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, config.Errorf("KAFKA_TLS_CA_FILE", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, config.Errorf("KAFKA_TLS_CA_FILE", "%q holds no PEM certificate", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, config.Errorf("KAFKA_TLS_CERT_FILE", "loading the key pair: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Metrics is franz-go's client metrics (kprom) on reg, named
// commentflow_<service>_kafka_*. Give it to one client per registry: a
// second client would register the same series again.
func Metrics(service string, reg prometheus.Registerer) kgo.Opt {
	return kgo.WithHooks(kprom.NewMetrics("commentflow", kprom.Subsystem(service+"_kafka"), kprom.Registerer(reg)))
}

// KafkaOpts are the franz-go options for the brokers, TLS and SASL.
func (c *Config) KafkaOpts(log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASLMechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()))
	default:
		return nil, config.Errorf("KAFKA_SASL_MECHANISM", "unknown mechanism %q", c.SASLMechanism)
	}
	return opts, nil
}

// RegistryClient is a schema registry client for SCHEMA_REGISTRY_*.
func (c *Config) RegistryClient() (*sr.Client, error) {
	opts := []sr.ClientOpt{
		sr.URLs(c.RegistryURL),
		sr.HTTPClient(&http.Client{Timeout: 10 * time.Second}),
		sr.UserAgent("commentflow"),
	}
	if c.RegistryUsername != "" {
		opts = append(opts, sr.BasicAuth(c.RegistryUsername, c.RegistryPassword))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, config.Errorf("SCHEMA_REGISTRY_URL", "%v", err)
	}
	return cl, nil
}

// RegistryMisconfigured names the variable to fix when the registry's
// answer means waiting cannot help: refused credentials (401/403) blame
// SCHEMA_REGISTRY_USERNAME, a 404 blames SCHEMA_REGISTRY_URL (the URL is not
// a schema registry). It returns nil for any other error.
func RegistryMisconfigured(url string, err error) error {
	var re *sr.ResponseError
	switch {
	case !errors.As(err, &re):
		return nil
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		return config.Errorf("SCHEMA_REGISTRY_USERNAME", "the registry at %s refused the credentials: %v", url, err)
	case re.StatusCode == http.StatusNotFound:
		return config.Errorf("SCHEMA_REGISTRY_URL", "%s does not look like a schema registry: %v", url, err)
	}
	return nil
}

// Fatal classifies a startup failure of the brokers or the registry: it
// returns the error naming the variable to fix when waiting cannot cure
// it (refused credentials or permissions, an untrusted certificate, a URL
// that is no schema registry), and nil when it may heal (unreachable, not
// ready yet).
func (c *Config) Fatal(err error) error {
	brokers := strings.Join(c.Brokers, ",")
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed),
		errors.Is(err, kerr.IllegalSaslState),
		errors.Is(err, kerr.UnsupportedSaslMechanism):
		return config.Errorf("KAFKA_SASL_USERNAME", "the brokers at %s refused the credentials: %v", brokers, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed),
		errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed):
		return config.Errorf("KAFKA_SASL_USERNAME", "the brokers at %s refused access to this user: %v", brokers, err)
	case config.UntrustedCert(err):
		return config.Errorf("KAFKA_TLS_CA_FILE", "the certificate of %s is not trusted: %v", brokers, err)
	}
	return RegistryMisconfigured(c.RegistryURL, err)
}

// WaitReady calls probe (a check of the brokers, the registry, or both)
// with backoff until it succeeds, for at most timeout (STARTUP_TIMEOUT),
// with Fatal's classification: what waiting cannot cure exits 2 at once,
// the rest is retried and, when time is up, reported with its last cause.
func (c *Config) WaitReady(ctx context.Context, log *slog.Logger, what string, timeout time.Duration, probe func(context.Context) error) error {
	return backoff.WaitReady(ctx, log, what, timeout, c.Fatal, probe)
}

// kgoLogger sends franz-go's logs to slog: warnings and errors, or
// everything from info up when the service logs at debug level (franz-go's
// info lines narrate every metadata refresh and group join).
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, msg, append([]any{"component", "kafka"}, keyvals...)...)
}
