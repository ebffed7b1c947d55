package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/procs"
)

// jaegerTool is the Jaeger v2 all-in-one, pinned by the `tool` line of
// tools/jaeger/go.mod (a module of its own, outside go.work: its
// dependency graph must not move the services' versions, nor
// golangci-lint's in tools/go.mod, which needs a newer otelhttp than
// Jaeger builds with).
const jaegerTool = "jaeger"

// jaegerConfig is a minimal Jaeger v2 configuration: OTLP/HTTP in, memory
// storage, the UI; every port on 127.0.0.1 and chosen by devstack.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaeger is a running Jaeger.
type jaeger struct {
	proc       *procs.Proc
	ui, otlp   string // base URLs
	buildTook  time.Duration
	configPath string
}

// startJaeger builds Jaeger from tools/jaeger (the first build compiles
// the whole of Jaeger: minutes; later ones come from the Go build cache)
// and runs it with its UI on uiPort and OTLP/HTTP on otlpPort.
func startJaeger(ctx context.Context, dataDir string, uiPort, otlpPort int, out io.Writer, log *slog.Logger) (*jaeger, error) {
	root, err := procs.RepoRoot()
	if err != nil {
		return nil, err
	}
	log.Info("building Jaeger from tools/jaeger (the first build compiles all of Jaeger: about 9 minutes of CPU, more on a busy machine; later ones take seconds)")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(root, "tools", "jaeger"), "tool", "-n", jaegerTool) //nolint:gosec // G204: go tool of the repository's own pinned tool module
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	bin, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("building jaeger (tools/jaeger): %w\n%s", err, stderr.String())
	}
	j := &jaeger{buildTook: time.Since(start)}
	grpcPort, err := infra.FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	j.configPath = filepath.Join(dataDir, "jaeger.yaml")
	if err := os.WriteFile(j.configPath, fmt.Appendf(nil, jaegerConfig, uiPort, grpcPort, otlpPort), 0o600); err != nil {
		return nil, err
	}
	j.proc, err = procs.Start(procs.Spec{
		Name: "jaeger", Bin: strings.TrimSpace(string(bin)), Args: []string{"--config", j.configPath}, Restart: true,
	}, out, log)
	if err != nil {
		return nil, err
	}
	j.ui = "http://127.0.0.1:" + strconv.Itoa(uiPort)
	j.otlp = "http://127.0.0.1:" + strconv.Itoa(otlpPort)
	if err := procs.WaitHTTP(ctx, j.ui+"/", 2*time.Minute); err != nil {
		_ = j.proc.Stop(5 * time.Second)
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	return j, nil
}

// env points the services at Jaeger.
func (j *jaeger) env() []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlp, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}
}

func (j *jaeger) stop() { _ = j.proc.Stop(5 * time.Second) }
