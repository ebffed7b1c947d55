package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// startup waits, within STARTUP_TIMEOUT, for the brokers to serve the topic
// and for the registry to register (or know) the schema, and returns the
// schema ID. Readiness follows each step. Failures are classified the way
// every service does (kafkaconn.Config.Fatal): what waiting cannot cure
// exits 2 at once naming the variable, the rest is retried.
func startup(ctx context.Context, cfg *Config, cl *kgo.Client, srcl *sr.Client, ready *ops.Readiness, log *slog.Logger) (int, error) {
	// One STARTUP_TIMEOUT for both steps.
	ctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	err := cfg.Kafka.WaitReady(ctx, log, "kafka", cfg.StartupTimeout, func(ctx context.Context) error {
		err := checkTopic(ctx, adm, cfg.Topic)
		ready.Set(checkKafka, err)
		return err
	})
	if err != nil {
		return 0, err
	}

	reg := schemas.NewRegistry(srcl).ForTopic(cfg.Topic)
	var id int
	// A 404 is retried only in lookup-only mode, where an init step may be
	// about to register the schema; registering never meets one from a
	// registry.
	fatal := func(err error) error {
		var incompatible *schemas.IncompatibleError
		var re *sr.ResponseError
		switch {
		case errors.As(err, &incompatible):
			return cli.Usage(fmt.Errorf("schema registry at %s: the producer's schema cannot be registered: %w", cfg.Kafka.RegistryURL, err))
		case errors.As(err, &re) && re.StatusCode == http.StatusNotFound && !cfg.AutoRegister:
			return nil
		case errors.As(err, &re) && re.StatusCode < http.StatusInternalServerError && re.StatusCode != http.StatusNotFound &&
			re.StatusCode != http.StatusUnauthorized && re.StatusCode != http.StatusForbidden:
			// a client error that will not change
			return fmt.Errorf("schema registry at %s: %w", cfg.Kafka.RegistryURL, err)
		}
		return cfg.Kafka.Fatal(err)
	}
	err = backoff.WaitReady(ctx, log, "schema registry", cfg.StartupTimeout, fatal, func(ctx context.Context) error {
		var err error
		if cfg.AutoRegister {
			id, err = reg.Register(ctx)
		} else {
			id, err = reg.Lookup(ctx)
		}
		ready.Set(checkRegistry, err)
		return err
	})
	var re *sr.ResponseError
	switch {
	case err != nil && !errors.Is(ctx.Err(), context.Canceled) && errors.As(err, &re) && re.StatusCode == http.StatusNotFound && !cfg.AutoRegister:
		return 0, config.Errorf("SCHEMA_AUTO_REGISTER", "is false (lookup-only) but subject %s at %s has no version matching the producer's schema within STARTUP_TIMEOUT=%s: register it first or set SCHEMA_AUTO_REGISTER=true", cfg.Topic+"-value", cfg.Kafka.RegistryURL, cfg.StartupTimeout)
	case err != nil:
		return 0, err
	}
	if cfg.AutoRegister {
		level, set := reg.Compatibility()
		log.Info("schema registered", "subject", reg.Subject(), "schema_id", id,
			"compatibility", level, "compatibility_set_by_producer", set)
	} else {
		log.Info("schema found", "subject", cfg.Topic+"-value", "schema_id", id)
	}
	return id, nil
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
