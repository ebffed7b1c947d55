// Command consumer reads comment events from Kafka as a member of the
// consumer group and stores each exactly once in MongoDB; records that can
// never be stored go to the dead-letter topic. Run `consumer --help` for its
// configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/commentflow/commentflow/consumer/internal/app"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, version, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
