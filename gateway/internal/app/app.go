// Package app is the gateway process: configuration, wiring, serving and
// shutdown. cmd/gateway calls Main; tests call run.
package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/logging"
	"github.com/commentflow/commentflow/platform/ops"
)

// Exit codes (platform/cli's).
const (
	ExitOK      = cli.ExitOK
	ExitFailure = cli.ExitFailure // runtime failure
	ExitUsage   = cli.ExitUsage   // bad configuration or usage
)

// Version is the build's version, logged at startup; main sets it from the
// -X main.version stamp.
var Version = "dev"

// Main runs the gateway with the process's arguments (args[0] is the
// program name) and returns its exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 1 && ops.IsHealthcheck(args[1:]) {
		return cli.Healthcheck(ctx, "gateway", DefaultHTTPAddr, args[2:], getenv, stdout, stderr)
	}
	return cli.Report(stderr, "gateway", run(ctx, args, getenv, stdout, stderr, hooks{}))
}

// hooks let tests observe and wrap the running server.
type hooks struct {
	listening func(addr net.Addr)             // called once the port is bound
	wrap      func(http.Handler) http.Handler // wraps the whole handler
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer, hk hooks) error {
	if len(args) > 0 {
		args = args[1:]
	}
	cfg, vars, err := parseConfig(args, getenv)
	if errors.Is(err, config.ErrHelp) {
		vars.Usage(stdout)
		return nil
	}
	if err != nil {
		return cli.Usage(err)
	}
	log, err := logging.New(stdout, cfg.LogLevel, "gateway")
	if err != nil {
		return cli.Usage(config.Errorf("LOG_LEVEL", "%v", err))
	}
	log.Info("config", append([]any{"version", Version}, vars.Attrs()...)...)

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

	client, err := mongo.Connect(options.Client().
		ApplyURI(cfg.MongoURI).
		SetAppName("commentflow-gateway").
		SetServerSelectionTimeout(cfg.DBTimeout))
	if err != nil {
		return cli.Usage(config.Errorf("MONGODB_URI", "%v", err))
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Disconnect(dctx); err != nil {
			log.Warn("disconnect from mongodb", "err", err)
		}
	}()
	coll := client.Database(cfg.MongoDatabase).Collection(cfg.MongoCollection)
	pctx, cancel := context.WithTimeout(ctx, cfg.DBTimeout)
	if err := client.Ping(pctx, nil); err != nil {
		// Serve anyway: /readyz reports not ready until MongoDB answers.
		log.Warn("mongodb is not reachable yet", "err", err)
	}
	cancel()

	registry := ops.NewRegistry()
	ready := ops.NewReadiness()
	registry.MustRegister(ready.Collector("gateway"))
	handler, err := api.NewServer(ctx, api.Options{
		Collection:  coll,
		Spec:        spec,
		Cursors:     codec,
		Logger:      log,
		Registry:    registry,
		Readiness:   ready,
		DBTimeout:   cfg.DBTimeout,
		CORSOrigins: cfg.CORSOrigins,
	})
	if err != nil {
		return err
	}
	if hk.wrap != nil {
		handler = hk.wrap(handler)
	}

	srv := ops.Server(cfg.HTTPAddr, handler, log)
	srv.ReadHeaderTimeout = cfg.ReadHeaderTimeout
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.IdleTimeout = cfg.IdleTimeout
	srv.MaxHeaderBytes = cfg.MaxHeaderBytes
	ln, err := ops.Listen(srv)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "docs", "/api/openapi")
	if hk.listening != nil {
		hk.listening(ln.Addr())
	}
	if err := ops.Serve(ctx, srv, ln, cfg.ShutdownTimeout); err != nil {
		log.Error("serve", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}
