// Command gendashboard writes the commentflow Grafana dashboard JSON from
// package observability. Run by `go generate` in devstack/observability.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/commentflow/commentflow/devstack/observability"
)

func main() {
	b, err := observability.Dashboard()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendashboard:", err)
		os.Exit(1)
	}
	// go generate runs in devstack/observability.
	out := filepath.Join("..", "..", filepath.FromSlash(observability.DashboardFile))
	if err := os.WriteFile(out, b, 0o644); err != nil { //nolint:gosec // G306: a committed, world-readable file
		fmt.Fprintln(os.Stderr, "gendashboard:", err)
		os.Exit(1)
	}
}
