// Package app is the producer service: configuration, startup (brokers,
// registry, schema), the ops HTTP server, the produce loop and graceful
// shutdown. cmd/producer calls Main; tests call Main or run.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

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

const service = "producer"

// Service is the producer for cli.Main.
func Service() cli.Service[Config] {
	return cli.Service[Config]{Name: service, DefaultAddr: defaultHTTPAddr, Declare: (*Config).declare,
		Validate: func(c *Config) error { return c.Kafka.Validate() }, Run: run,
		ShutdownTimeout: func(c *Config) time.Duration { return c.ShutdownTimeout }}
}

// run is the producer. It returns when count events are acknowledged, or
// after a graceful shutdown once ctx is done.
func run(ctx context.Context, cfg *Config, env cli.Env) error {
	log := env.Log
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

	// The ops server comes up first and stays up until the very end, so
	// /healthz answers during startup and the final flush.
	o, err := ops.Start(ctx, ops.Options{
		Service: service, Version: env.Version, Addr: cfg.HTTPAddr,
		ShutdownTimeout: cfg.ShutdownTimeout, Log: log, Pending: []string{checkKafka, checkRegistry},
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := o.Stop(); err != nil {
			log.Warn("ops server", "err", err)
		}
	}()
	ready := o.Ready
	metrics := produce.NewMetrics()
	if err := metrics.Register(o.Registry); err != nil {
		return err
	}

	cl, err := kgo.NewClient(append(append(connOpts, prodOpts...),
		append(env.Telemetry.KafkaOpts("commentflow-producer", ""), kafkaconn.Metrics(service, o.Registry))...)...)
	if err != nil {
		return cli.Usage(fmt.Errorf("kafka client options: %w", err))
	}
	defer cl.Close()

	schemaID, err := startup(ctx, cfg, cl, srcl, ready, log)
	if ctx.Err() != nil {
		log.Info("stopped during startup")
		return nil
	}
	if err != nil {
		return err
	}

	var tracer trace.Tracer
	if env.Telemetry.On() {
		tracer = env.Telemetry.Tracer()
	}
	p := produce.New(cl, schemas.NewEncoder(schemaID), produce.Options{
		Logger:  log,
		Metrics: metrics,
		Tracer:  tracer,
		Topic:   cfg.Topic,
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
	rep := startReporter(p, cfg, log, env.Stderr)
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
