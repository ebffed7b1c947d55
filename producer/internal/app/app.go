// Package app is the producer service: configuration, startup (brokers,
// registry, schema), the ops HTTP server, the produce loop and graceful
// shutdown. cmd/producer calls Main; tests call Main or run.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/logging"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

// Version is the build's version, stamped into cmd/producer by the
// Dockerfile and handed over by main.
var Version = "dev"

// Exit codes (platform/cli's).
const (
	ExitOK      = cli.ExitOK
	ExitRuntime = cli.ExitFailure
	ExitUsage   = cli.ExitUsage
)

// Readiness check names.
const (
	checkKafka    = "kafka"
	checkRegistry = "schema_registry"
)

// Main runs the producer (or its healthcheck subcommand) and returns the
// exit code, having printed any error as one line on stderr.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 1 && ops.IsHealthcheck(args[1:]) {
		return cli.Healthcheck(ctx, "producer", defaultHTTPAddr, args[2:], getenv, stdout, stderr)
	}
	return cli.Report(stderr, "producer", run(ctx, args, getenv, stdout, stderr))
}

// run is the producer. args[0] is the program name; the rest are flags.
// It returns when count events are acknowledged, or after a graceful
// shutdown once ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if cli.IsVersion(args[1:]) {
		fmt.Fprintln(stdout, "producer", Version)
		return nil
	}
	var flags []string
	if len(args) > 1 {
		flags = args[1:]
	}
	cfg, set, err := parseConfig(flags, getenv)
	if errors.Is(err, config.ErrHelp) {
		set.Usage(stdout)
		return nil
	}
	if err != nil {
		return cli.Usage(err)
	}
	log, err := logging.New(stdout, cfg.LogLevel, "producer")
	if err != nil {
		return cli.Usage(config.Errorf("LOG_LEVEL", "%v", err))
	}
	log.Info("starting", "version", Version, slog.Group("config", set.Attrs()...))

	// Everything that can be checked without the network is checked before
	// anything starts, so that bad configuration exits 2 at once.
	connOpts, err := cfg.Kafka.KafkaOpts(log)
	if err != nil {
		return cli.Usage(err)
	}
	prodOpts, err := produce.ClientOpts(produce.Config{
		Topic:           cfg.Topic,
		Compression:     cfg.Compression,
		Linger:          cfg.Linger,
		DeliveryTimeout: cfg.DeliveryTimeout,
	})
	if err != nil {
		return cli.Usage(err)
	}
	srcl, err := cfg.Kafka.RegistryClient()
	if err != nil {
		return cli.Usage(err)
	}
	seed := cfg.Seed
	if seed < 0 { // parseConfig already rejects it (config.Min(0))
		return cli.Usage(config.Errorf("PRODUCER_SEED", "must be at least 0, got %d", seed))
	}
	gen, err := generate.New(generate.Options{Seed: uint64(seed), Posts: cfg.Posts})
	if err != nil {
		return cli.Usage(config.Errorf("PRODUCER_POSTS", "%v", err))
	}
	cl, err := kgo.NewClient(append(connOpts, prodOpts...)...)
	if err != nil {
		return cli.Usage(fmt.Errorf("kafka client options: %w", err))
	}
	defer cl.Close()

	// The ops server comes up first and stays up until the very end, so
	// /healthz answers during startup and the final flush.
	reg := ops.NewRegistry()
	metrics := produce.NewMetrics(cl)
	if err := metrics.Register(reg); err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "commentflow_producer_build_info",
		Help:        "Always 1; the version label is the producer's build.",
		ConstLabels: prometheus.Labels{"version": Version},
	}, func() float64 { return 1 }))
	ready := ops.NewReadiness(checkKafka, checkRegistry)
	reg.MustRegister(ready.Collector("producer"))
	srv := ops.Server(cfg.HTTPAddr, ops.Handler(reg, ready), log)
	ln, err := ops.Listen(srv)
	if err != nil {
		return err
	}
	log.Info("ops server listening", "addr", ln.Addr().String())
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() { srvDone <- ops.Serve(srvCtx, srv, ln, cfg.ShutdownTimeout) }()
	defer func() {
		stopSrv()
		if err := <-srvDone; err != nil {
			log.Warn("ops server", "err", err)
		}
	}()

	schemaID, err := startup(ctx, cfg, cl, srcl, ready, log)
	if ctx.Err() != nil {
		log.Info("stopped during startup")
		return nil
	}
	if err != nil {
		return err
	}

	p := produce.New(cl, schemas.NewEncoder(schemaID), produce.Options{
		Logger:  log,
		Metrics: metrics,
		OnHealth: func(err error) {
			ready.Set(checkKafka, err)
		},
	})
	log.Info("producing", "topic", cfg.Topic, "schema_id", schemaID, "seed", gen.Seed(),
		"rate", cfg.Rate, "count", cfg.Count, "posts", cfg.Posts, "compression", cfg.Compression)

	// The final flush waits without limit while ctx runs (a one-shot run
	// waits for every acknowledgement, which the delivery timeout bounds),
	// and for SHUTDOWN_TIMEOUT once ctx is done; then the producer gives
	// up, which also frees a Run blocked on a full buffer.
	flushCtx, cancelFlush := flushContext(ctx, cfg.ShutdownTimeout, p.Abort)
	defer cancelFlush()
	rep := startReporter(p, cfg, log, stderr)
	start := time.Now()
	sent, runErr := p.Run(ctx, gen.Next, cfg.Rate, cfg.Count)
	if ctx.Err() != nil {
		log.Info("stopping: flushing buffered events", "pending", p.Stats().Pending(), "timeout", cfg.ShutdownTimeout.String())
	}
	flushErr := p.Flush(flushCtx)
	rep.stop()
	st := p.Stats()
	elapsed := time.Since(start)
	log.Info("stopped", "sent", sent, "produced", st.Produced, "failed", st.Failed,
		"pending", st.Pending(), "elapsed", elapsed.Round(time.Millisecond).String(),
		"events_per_second", perSecond(st.Produced, elapsed))

	switch {
	case runErr != nil:
		return runErr
	case flushErr != nil:
		return fmt.Errorf("%d events not acknowledged within SHUTDOWN_TIMEOUT=%s: %w", st.Pending(), cfg.ShutdownTimeout, flushErr)
	case cfg.Count > 0 && st.Failed > 0:
		return fmt.Errorf("%d of %d events failed: %w", st.Failed, sent, produce.ErrFailed)
	}
	return nil
}

// flushContext is a context that ends timeout after ctx does, calling
// giveUp then, or when its cancel function is called.
func flushContext(ctx context.Context, timeout time.Duration, giveUp func()) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(timeout)
			defer t.Stop()
			select {
			case <-t.C:
				giveUp()
				cancel()
			case <-fctx.Done():
			}
		case <-fctx.Done():
		}
	}()
	return fctx, cancel
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(int64(float64(n)/d.Seconds()*10)) / 10
}
