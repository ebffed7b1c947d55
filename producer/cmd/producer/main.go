// Command producer generates realistic social-network comments and produces
// them, Avro-encoded and registered, to Kafka. `producer --help` lists its
// configuration.
package main

import (
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/producer/internal/app"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() { cli.Exit(app.Service(), version) }
