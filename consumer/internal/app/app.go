// Package app wires the consumer service: configuration, logging, the ops
// HTTP server, MongoDB, Kafka, the schema registry, and the ingest loop.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/ingest"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/logging"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

const service = "consumer"

// Main runs the consumer with the process's arguments (args[0] is the
// program name) and returns its exit code: 0 ok (also after SIGTERM), 2 bad
// configuration or usage, 1 a runtime failure.
func Main(ctx context.Context, version string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		args = args[1:]
	}
	if ops.IsHealthcheck(args) {
		return cli.Healthcheck(ctx, service, DefaultHTTPAddr, args[1:], getenv, stdout, stderr)
	}
	if cli.IsVersion(args) {
		fmt.Fprintln(stdout, service, version)
		return cli.ExitOK
	}
	return cli.Report(stderr, service, Run(ctx, version, args, getenv, stdout, stderr))
}

// Run is the consumer: it returns nil after a clean shutdown (ctx done),
// config.ErrHelp after printing --help, a cli.UsageError for bad configuration,
// or the runtime failure. args are the flags (without the program name).
// Logs go to stdout; nothing is written to stderr: errors are returned,
// and Main prints them.
func Run(ctx context.Context, version string, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var cfg Config
	set := config.New(service)
	cfg.declare(set)
	if err := set.Parse(args, getenv); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(stdout)
			return err
		}
		return cli.Usage(err)
	}
	if err := cfg.validate(); err != nil {
		return cli.Usage(err)
	}
	log, err := logging.New(stdout, cfg.LogLevel, service)
	if err != nil {
		return cli.Usage(config.Errorf("LOG_LEVEL", "%v", err))
	}
	log.Info("starting", "version", version, slog.Group("config", set.Attrs()...))

	reg := ops.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "commentflow", Subsystem: service, Name: "build_info",
		Help: "Always 1; the version label is the running build.", ConstLabels: prometheus.Labels{"version": version},
	}, func() float64 { return 1 }))
	// Not ready until the loop runs; then ingest keeps the checks up to
	// date.
	ready := ops.NewReadiness(ingest.Checks...)
	reg.MustRegister(ready.Collector(service))

	srv := ops.Server(cfg.HTTPAddr, ops.Handler(reg, ready), log)
	ln, err := ops.Listen(srv)
	if err != nil {
		return err
	}
	log.Info("ops endpoints listening", "addr", ln.Addr().String())
	// The ops server outlives ctx: /healthz keeps answering while the
	// last batch is finished, and stops after the consumer.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpDone := make(chan error, 1)
	go func() { httpDone <- ops.Serve(httpCtx, srv, ln, cfg.ShutdownTimeout) }()

	runErr := consume(ctx, cfg, log, reg, ready)

	stopHTTP()
	if err := <-httpDone; err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		log.Error("stopped", "err", runErr)
		return runErr
	}
	log.Info("stopped")
	return nil
}

// consume connects to everything and runs the ingest loop until ctx is
// done.
func consume(ctx context.Context, cfg Config, log *slog.Logger, reg *prometheus.Registry, ready *ops.Readiness) error {
	st, err := store.Open(store.Config{
		URI: cfg.MongoURI, Database: cfg.MongoDatabase, Collection: cfg.MongoCollection,
		WriteConcern: cfg.MongoWriteConcern, AppName: "commentflow-" + service,
	})
	if err != nil {
		return cli.Usage(config.Errorf("MONGODB_URI", "%v", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
	}()
	if !st.Acknowledged() {
		log.Warn("MONGODB_WRITE_CONCERN=0: inserts are not acknowledged, so a failed write goes unnoticed and its offset is committed anyway")
	}

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
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	if err := waitFor(startCtx, log, "mongodb", st.EnsureIndexes); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("mongodb not usable within STARTUP_TIMEOUT=%s: %w", cfg.StartupTimeout, err)
	}
	ready.Set("mongodb", nil) // until ingest takes the check over
	log.Info("mongodb ready", "database", cfg.MongoDatabase, "collection", cfg.MongoCollection)
	if err := waitFor(startCtx, log, "kafka", func(ctx context.Context) error {
		return checkTopics(ctx, kopts, cfg.Topic, cfg.DLQTopic)
	}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("kafka not usable within STARTUP_TIMEOUT=%s: %w", cfg.StartupTimeout, err)
	}
	ready.Set("kafka", nil)
	log.Info("kafka ready", "topic", cfg.Topic, "dlq_topic", cfg.DLQTopic)

	w, err := dlq.NewWriter(kopts, cfg.DLQTopic, cfg.Group)
	if err != nil {
		return err
	}
	defer w.Close()

	c, err := ingest.New(ingest.Config{
		Topic:           cfg.Topic,
		Group:           cfg.Group,
		BatchSize:       cfg.BatchSize,
		BatchTimeout:    cfg.BatchTimeout,
		MaxPollRecords:  cfg.MaxPollRecords,
		FetchMaxBytes:   int32(cfg.FetchMaxBytes), //nolint:gosec // G115: KAFKA_FETCH_MAX_BYTES is checked to be at most 256 MiB
		SessionTimeout:  cfg.SessionTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, ingest.Deps{
		KafkaOpts:    kopts,
		Decoder:      schemas.NewDecoder(rc),
		Store:        st,
		DLQ:          w,
		Ready:        ready,
		Registerer:   reg,
		Log:          log,
		RegistryPing: registryPing(rc),
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// waitFor retries fn with backoff until it succeeds or ctx is done.
func waitFor(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	b := backoff.Default()
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("waiting for "+what, "attempt", b.Attempts()+1, "err", err)
		if b.Wait(ctx) != nil {
			return err
		}
	}
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
