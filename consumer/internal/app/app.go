// Package app wires the consumer service: configuration, logging, the ops
// HTTP server, MongoDB, Kafka, the schema registry, and the ingest loop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/ingest"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/platform/telemetry"
	"github.com/commentflow/commentflow/schemas"
)

const service = "consumer"

// Service is the consumer for cli.Main.
func Service() cli.Service[Config] {
	return cli.Service[Config]{Name: service, DefaultAddr: DefaultHTTPAddr, Declare: (*Config).declare,
		Validate: (*Config).validate, Run: run,
		ShutdownTimeout: func(c *Config) time.Duration { return c.ShutdownTimeout }}
}

// run is the consumer: it returns nil after a clean shutdown (ctx done)
// or the failure.
func run(ctx context.Context, cfg *Config, env cli.Env) error {
	// Not ready until the loop runs; then ingest keeps the checks up to
	// date. The ops server outlives ctx: /healthz keeps answering while
	// the last batch is finished, and stops after the consumer.
	o, err := ops.Start(ctx, ops.Options{
		Service: service, Version: env.Version, Addr: cfg.HTTPAddr,
		ShutdownTimeout: cfg.ShutdownTimeout, Log: env.Log, Pending: ingest.Checks,
	})
	if err != nil {
		return err
	}
	runErr := consume(ctx, *cfg, env.Log, o.Registry, o.Ready, env.Telemetry)
	if err := o.Stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// consume connects to everything and runs the ingest loop until ctx is
// done.
func consume(ctx context.Context, cfg Config, log *slog.Logger, reg *prometheus.Registry, ready *ops.Readiness, tel *telemetry.Telemetry) error {
	kopts, err := cfg.Kafka.KafkaOpts(log)
	if err != nil {
		return cli.Usage(err)
	}
	kopts = append(kopts, kgo.ClientID("commentflow-"+service))
	rc, err := cfg.Kafka.RegistryClient()
	if err != nil {
		return cli.Usage(err)
	}
	if err := checkRegistry(ctx, log, rc, cfg.Kafka.RegistryURL); err != nil {
		return cli.Usage(err)
	}

	// Wait for the dependencies the loop cannot do without. The registry
	// is not one of them: while it is down, decoding waits and retries.
	// The configuration is checked already, so a failure to open the
	// client (a mongodb+srv:// name that does not resolve yet) is retried
	// like any other.
	var st *store.Store
	defer func() {
		if st == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
	}()
	if err := cfg.Mongo.WaitReady(ctx, log, cfg.StartupTimeout, func(ctx context.Context) error {
		if st == nil {
			s, err := store.Open(store.Config{
				URI: cfg.Mongo.URI, Database: cfg.Mongo.Database, Collection: cfg.Mongo.Collection,
				WriteConcern: cfg.MongoWriteConcern, AppName: "commentflow-" + service,
				Telemetry: tel,
			})
			if err != nil {
				return err
			}
			st = s
		}
		return st.EnsureIndexes(ctx)
	}); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if !st.Acknowledged() {
		log.Warn("MONGODB_WRITE_CONCERN=0: inserts are not acknowledged, so a failed write goes unnoticed and its offset is committed anyway")
	}
	ready.Set("mongodb", nil) // until ingest takes the check over
	log.Info("mongodb ready", "database", cfg.Mongo.Database, "collection", cfg.Mongo.Collection)
	// The dead-letter writer asks the brokers for the topic's
	// max.message.bytes, so it is made once the topics are there.
	var w *dlq.Writer
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	if err := cfg.Kafka.WaitReady(ctx, log, "kafka", cfg.StartupTimeout, func(ctx context.Context) error {
		if err := checkTopics(ctx, kopts, cfg.Topic, cfg.DLQTopic); err != nil {
			return err
		}
		dw, err := dlq.NewWriter(ctx, kopts, cfg.DLQTopic, cfg.Group)
		if err != nil {
			return err
		}
		w = dw
		return nil
	}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ready.Set("kafka", nil)
	log.Info("kafka ready", "topic", cfg.Topic, "dlq_topic", cfg.DLQTopic)

	instanceID, err := resolveInstanceID(cfg.InstanceID, os.Hostname)
	if err != nil {
		return cli.Usage(fmt.Errorf("CONSUMER_INSTANCE_ID: %w", err))
	}
	c, err := ingest.New(ingest.Config{
		Topic:           cfg.Topic,
		Group:           cfg.Group,
		InstanceID:      instanceID,
		BatchSize:       cfg.BatchSize,
		BatchTimeout:    cfg.BatchTimeout,
		MaxPollRecords:  cfg.MaxPollRecords,
		FetchMaxBytes:   int32(cfg.FetchMaxBytes), //nolint:gosec // G115: KAFKA_FETCH_MAX_BYTES is checked to be at most 256 MiB
		SessionTimeout:  cfg.SessionTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, ingest.Deps{
		KafkaOpts:    append(kopts, kafkaconn.Metrics(service, reg)),
		Decoder:      schemas.NewDecoderWith(rc, schemas.Validator{MaxFutureSkew: cfg.MaxFutureSkew}),
		Store:        st,
		DLQ:          w,
		Ready:        ready,
		Registerer:   reg,
		Log:          log,
		RegistryPing: registryPing(rc),
		Telemetry:    tel,
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// checkTopics checks that the brokers answer and both topics exist. The
// consumer creates no topic: that is the deployment's job (redpanda/init).
func checkTopics(ctx context.Context, kopts []kgo.Opt, topics ...string) error {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		if !details.Has(t) {
			return fmt.Errorf("topic %q does not exist", t)
		}
		if err := details[t].Err; err != nil {
			return fmt.Errorf("topic %q: %w", t, err)
		}
	}
	return nil
}

// checkRegistry asks the registry once at startup, so that a
// misconfiguration that can never heal — refused credentials, or a URL that
// is not a schema registry — stops the consumer with a clear error instead
// of retrying every record forever. A registry that is down or erroring is
// not such a case: decoding waits for it.
func checkRegistry(ctx context.Context, log *slog.Logger, rc *sr.Client, url string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := rc.Subjects(cctx)
	if err == nil {
		return nil
	}
	if merr := kafkaconn.RegistryMisconfigured(url, err); merr != nil {
		return merr
	}
	log.Warn("schema registry not reachable yet; records wait for it", "url", url, "err", err)
	return nil
}

// registryPing is the readiness ping of an idle consumer: the registry
// answers (any HTTP answer but a server error counts).
func registryPing(rc *sr.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		res := rc.Compatibility(ctx)
		if len(res) == 0 || res[0].Err == nil {
			return nil
		}
		var re *sr.ResponseError
		if errors.As(res[0].Err, &re) && re.StatusCode < http.StatusInternalServerError {
			return nil
		}
		return fmt.Errorf("schema registry: %w", res[0].Err)
	}
}
