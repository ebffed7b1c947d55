package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// attemptTimeout bounds one startup probe, so that a retry (and its log
// line) comes at least this often while a dependency is down.
const attemptTimeout = 5 * time.Second

// startup waits, within STARTUP_TIMEOUT, for the brokers to serve the topic
// and for the registry to register (or know) the schema, and returns the
// schema ID. Readiness follows each step.
func startup(ctx context.Context, cfg *Config, cl *kgo.Client, srcl *sr.Client, ready *ops.Readiness, log *slog.Logger) (int, error) {
	sctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	within := fmt.Sprintf("within STARTUP_TIMEOUT=%s", cfg.StartupTimeout)

	adm := kadm.NewClient(cl)
	err := retry(sctx, log, "kafka", retryable, func(ctx context.Context) error {
		err := checkTopic(ctx, adm, cfg.Topic)
		ready.Set(checkKafka, err)
		return err
	})
	if errors.Is(err, kerr.SaslAuthenticationFailed) {
		return 0, config.Errorf("KAFKA_SASL_USERNAME", "the brokers at %s refused the credentials: %v", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	if untrustedCert(err) {
		return 0, config.Errorf("KAFKA_TLS_CA_FILE", "the certificate of the brokers at %s is not trusted: %v", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	if err != nil {
		return 0, fmt.Errorf("kafka at %s not ready %s: %w", strings.Join(cfg.Kafka.Brokers, ","), within, err)
	}

	reg := schemas.NewRegistry(srcl).ForTopic(cfg.Topic)
	var id int
	// A 404 is retried only in lookup-only mode, where an init step may be
	// about to register the schema; registering never meets one from a
	// registry.
	registryRetryable := func(err error) bool {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return !cfg.AutoRegister
		}
		return retryable(err)
	}
	err = retry(sctx, log, "schema registry", registryRetryable, func(ctx context.Context) error {
		var err error
		if cfg.AutoRegister {
			id, err = reg.Register(ctx)
		} else {
			id, err = reg.Lookup(ctx)
		}
		ready.Set(checkRegistry, err)
		return err
	})
	if err != nil {
		return 0, registryFailure(cfg, within, err)
	}
	if cfg.AutoRegister {
		log.Info("schema registered", "subject", reg.Subject(), "schema_id", id)
	} else {
		log.Info("schema found", "subject", cfg.Topic+"-value", "schema_id", id)
	}
	return id, nil
}

// retry calls fn with backoff until it succeeds, ctx ends, or the error
// cannot heal, logging each failure.
func retry(ctx context.Context, log *slog.Logger, what string, retryable func(error) bool, fn func(context.Context) error) error {
	b := &backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	return backoff.Retry(ctx, b, retryable, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		err := fn(actx)
		if err != nil && ctx.Err() == nil && retryable(err) {
			log.Warn(what+" not ready, retrying", "attempt", b.Attempts()+1, "err", err)
		}
		return err
	})
}

// checkTopic asks the brokers for the topic's metadata: it proves they are
// reachable, authenticated, and that the topic exists (an init step may be
// creating it, so a missing topic is retried too).
func checkTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	td, ok := tds[topic]
	switch {
	case !ok:
		return fmt.Errorf("topic %q: no metadata", topic)
	case td.Err != nil:
		return fmt.Errorf("topic %q: %w", topic, td.Err)
	case len(td.Partitions) == 0:
		return fmt.Errorf("topic %q has no partitions", topic)
	}
	return nil
}

// retryable is false for what waiting cannot fix: refused credentials or
// permissions, and a schema the registry cannot accept.
func retryable(err error) bool {
	var incompatible *schemas.IncompatibleError
	var re *sr.ResponseError
	switch {
	case errors.As(err, &incompatible), untrustedCert(err):
		return false
	case errors.Is(err, kerr.SaslAuthenticationFailed),
		errors.Is(err, kerr.TopicAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.IllegalSaslState),
		errors.Is(err, kerr.UnsupportedSaslMechanism):
		return false
	case errors.As(err, &re):
		// 5xx is the registry being unwell; client errors will not change.
		return re.StatusCode >= 500
	}
	return true
}

// untrustedCert reports a server certificate that does not verify: an
// unknown authority, a wrong host name, an expired certificate.
func untrustedCert(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &tv)
}

// registryFailure words a failed schema step for the operator. Problems
// fixed in the deployment (incompatible schema, missing schema in
// lookup-only mode, refused credentials) exit 2.
func registryFailure(cfg *Config, within string, err error) error {
	var incompatible *schemas.IncompatibleError
	var re *sr.ResponseError
	switch {
	case errors.As(err, &incompatible):
		return cli.Usage(fmt.Errorf("schema registry at %s: the producer's schema cannot be registered: %w", cfg.Kafka.RegistryURL, err))
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound && !cfg.AutoRegister:
		return config.Errorf("SCHEMA_AUTO_REGISTER", "is false (lookup-only) but subject %s at %s has no version matching the producer's schema %s: register it first or set SCHEMA_AUTO_REGISTER=true", cfg.Topic+"-value", cfg.Kafka.RegistryURL, within)
	}
	if merr := kafkaconn.RegistryMisconfigured(cfg.Kafka.RegistryURL, err); merr != nil {
		return merr
	}
	return fmt.Errorf("schema registry at %s not ready %s: %w", cfg.Kafka.RegistryURL, within, err)
}
