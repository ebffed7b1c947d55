// Package app is the gateway's own wiring: configuration, MongoDB, the
// API server. cmd/gateway hands Service to cli.Main.
package app

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/gateway/internal/stream"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// Exit codes (platform/cli's).
const (
	ExitOK      = cli.ExitOK
	ExitFailure = cli.ExitFailure // runtime failure
	ExitUsage   = cli.ExitUsage   // bad configuration or usage
)

const service = "gateway"

// Service is the gateway for cli.Main.
func Service() cli.Service[Config] { return newService(hooks{}) }

// hooks let tests observe and wrap the running server.
type hooks struct {
	listening func(addr net.Addr)             // called once the port is bound
	wrap      func(http.Handler) http.Handler // wraps the whole handler
}

func newService(hk hooks) cli.Service[Config] {
	return cli.Service[Config]{
		Name:        service,
		DefaultAddr: DefaultHTTPAddr,
		Declare:     (*Config).declare,
		Validate:    (*Config).validate,
		Run: func(ctx context.Context, cfg *Config, env cli.Env) error {
			return run(ctx, cfg, env, hk)
		},
		ShutdownTimeout: func(c *Config) time.Duration { return c.ShutdownTimeout },
	}
}

func run(ctx context.Context, cfg *Config, env cli.Env, hk hooks) error {
	log := env.Log
	spec, err := api.LoadSpec(ctx)
	if err != nil {
		return err
	}
	var codec *cursor.Codec
	if cfg.CursorSecret == "" {
		log.Warn("GATEWAY_CURSOR_SECRET is not set: cursors are signed with a random key, so they stop working after a restart and are not accepted by other replicas")
		codec = cursor.NewRandom()
	} else if codec, err = cursor.New([]byte(cfg.CursorSecret)); err != nil {
		return cli.Usage(config.Errorf("GATEWAY_CURSOR_SECRET", "%v", err))
	}

	// The URI's shape was checked with the configuration; a failure here
	// (a mongodb+srv:// name that does not resolve) is a runtime failure.
	client, coll, err := cfg.Mongo.Connect("commentflow-gateway", env.Telemetry, options.Client().SetServerSelectionTimeout(cfg.DBTimeout))
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Disconnect(dctx); err != nil {
			log.Warn("disconnect from mongodb", "err", err)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, cfg.DBTimeout)
	err = client.Ping(pctx, nil)
	cancel()
	if err != nil {
		if ferr := cfg.Mongo.Fatal(err); ferr != nil {
			// Refused credentials or an untrusted certificate: waiting
			// cannot cure them.
			return ferr
		}
		// Serve anyway: /readyz reports not ready until MongoDB answers.
		log.Warn("mongodb is not reachable yet", "err", err)
	}

	// The comment stream's reader: it needs Kafka and the registry, which
	// may be down; the rest of the API does not wait for them.
	kopts, err := cfg.Kafka.KafkaOpts(log)
	if err != nil {
		return cli.Usage(err)
	}
	rc, err := cfg.Kafka.RegistryClient()
	if err != nil {
		return cli.Usage(err)
	}
	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	var hub *stream.Hub
	hubDone := make(chan struct{})

	// The API and the ops endpoints share one server; it stops gracefully
	// (in-flight requests finish) when ctx ends.
	o, err := ops.Start(ctx, ops.Options{
		Service: service, Version: env.Version, Addr: cfg.HTTPAddr,
		ShutdownTimeout: cfg.ShutdownTimeout, Log: log,
		Handler: func(reg *prometheus.Registry, ready *ops.Readiness) (http.Handler, error) {
			hub, err = stream.NewHub(stream.Options{
				KafkaOpts: kopts, Topic: cfg.Topic, Decoder: schemas.NewDecoder(rc),
				Buffer: cfg.StreamBuffer, Log: log, Registerer: reg,
			})
			if err != nil {
				return nil, err
			}
			ready.Optional("kafka", hub.Check)
			h, err := api.NewServer(ctx, api.Options{
				Collection:  coll,
				Spec:        spec,
				Cursors:     codec,
				Logger:      log,
				Registry:    reg,
				Readiness:   ready,
				DBTimeout:   cfg.DBTimeout,
				CORSOrigins: cfg.CORSOrigins,
				Stream: api.StreamOptions{
					Hub: hub, Max: cfg.MaxStreams, Heartbeat: cfg.StreamHeartbeat,
					WriteTimeout: cfg.StreamWrite, Retry: cfg.StreamRetry,
				},
			})
			if err != nil {
				return nil, err
			}
			h = traced(env.Telemetry, h)
			if hk.wrap != nil {
				h = hk.wrap(h)
			}
			return h, nil
		},
		Tune: func(srv *http.Server) {
			srv.ReadHeaderTimeout = cfg.ReadHeaderTimeout
			srv.ReadTimeout = cfg.ReadTimeout
			srv.WriteTimeout = cfg.WriteTimeout
			srv.IdleTimeout = cfg.IdleTimeout
			srv.MaxHeaderBytes = cfg.MaxHeaderBytes
		},
	})
	if err != nil {
		return err
	}
	go func() {
		defer close(hubDone)
		_ = hub.Run(hubCtx)
	}()
	log.Info("serving the API", "docs", "/api/openapi", "stream", "/api/v1/comments/stream")
	if hk.listening != nil {
		hk.listening(o.Addr)
	}
	select {
	case <-ctx.Done():
	case <-o.Done():
	}
	// End every stream first: the server's graceful stop waits for them.
	stopHub()
	<-hubDone
	return o.Stop()
}
