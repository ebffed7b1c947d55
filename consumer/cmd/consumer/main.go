// Command consumer reads comment events from Kafka as a member of the
// consumer group and stores each exactly once in MongoDB; records that can
// never be stored go to the dead-letter topic. Run `consumer --help` for its
// configuration.
package main

import (
	"github.com/commentflow/commentflow/consumer/internal/app"
	"github.com/commentflow/commentflow/platform/cli"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() { cli.Exit(app.Service(), version) }
