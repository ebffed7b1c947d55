// Command gateway serves commentflow's read-only REST API over the comments
// in MongoDB, with Swagger UI at /api/openapi. Run `gateway --help` for its
// configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/commentflow/commentflow/gateway/internal/app"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
