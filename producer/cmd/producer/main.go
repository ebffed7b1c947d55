// Command producer generates realistic social-network comments and produces
// them, Avro-encoded and registered, to Kafka. `producer --help` lists its
// configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/commentflow/commentflow/producer/internal/app"
)

// version is stamped by the Dockerfile: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app.Version = version
	code := app.Main(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
