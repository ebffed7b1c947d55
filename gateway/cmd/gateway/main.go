// Command gateway serves commentflow's read-only REST API over the comments
// in MongoDB, with Swagger UI at /api/openapi. Run `gateway --help` for its
// configuration.
package main

import (
	"github.com/commentflow/commentflow/gateway/internal/app"
	"github.com/commentflow/commentflow/platform/cli"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() { cli.Exit(app.Service(), version) }
