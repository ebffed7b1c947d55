// Package cli is the command-line contract every commentflow service keeps,
// in one place: Main owns the arguments, `--help`, `--version`, the
// `healthcheck` subcommand used by distroless Docker healthchecks, the
// LOG_LEVEL variable and the one startup log line, exit codes (0 ok, 1
// runtime failure, 2 bad configuration or usage) and errors reported as one
// line on stderr, and tracing: the OTEL_* switches declared with the
// service's settings, the telemetry started before the service runs and its
// spans flushed after (platform/telemetry). A service supplies only a
// Service: its name, the default address of its HTTP server, its
// configuration declaration and its run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/logging"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/platform/telemetry"
)

// Service is what a service supplies to Main; C is its configuration.
type Service[C any] struct {
	Name        string // the program's name: logs, errors, --help
	DefaultAddr string // default HTTP_ADDR, probed by `healthcheck`
	// Declare adds the service's variables to s, bound to cfg's fields.
	// LOG_LEVEL is Main's own.
	Declare func(cfg *C, s *config.Set)
	// Validate checks what single variables cannot (combinations); nil
	// for none. Its error is a usage error.
	Validate func(cfg *C) error
	// Run is the service: it returns nil after a clean stop (ctx done).
	Run func(ctx context.Context, cfg *C, env Env) error
	// ShutdownTimeout is the service's SHUTDOWN_TIMEOUT: how long Main
	// lets the spans still buffered when Run returns reach the exporter.
	// Nil: DefaultShutdownTimeout.
	ShutdownTimeout func(cfg *C) time.Duration
}

// DefaultShutdownTimeout bounds the final flush of spans of a Service
// without a ShutdownTimeout.
const DefaultShutdownTimeout = 10 * time.Second

// Env is what Main hands a service's Run besides its configuration.
type Env struct {
	Version string
	Log     *slog.Logger // JSON on stdout at LOG_LEVEL, "service" attribute set
	Stdout  io.Writer
	Stderr  io.Writer // for a human watching (progress), never errors
	// Telemetry is the service's tracing (OTEL_*); nil when off, and
	// then every method does nothing. Main flushes it after Run returns.
	Telemetry *telemetry.Telemetry
}

// Exit runs svc as the process: os.Args, os.Getenv, stdout and stderr,
// stopped gracefully by SIGINT or SIGTERM. It does not return.
func Exit[C any](svc Service[C], version string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, svc, version, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs svc with the process's arguments (args[0] is the program
// name) and returns its exit code, having written any error as one line on
// stderr.
func Main[C any](ctx context.Context, svc Service[C], version string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		args = args[1:]
	}
	if ops.IsHealthcheck(args) {
		return healthcheck(ctx, svc.Name, svc.DefaultAddr, args[1:], getenv, stdout, stderr)
	}
	return Report(stderr, svc.Name, Run(ctx, svc, version, args, getenv, stdout, stderr))
}

// Run is Main without the exit code: args are the flags (without the
// program name). It prints --version and --help to stdout (returning nil),
// parses and validates the configuration (a *config.Error or UsageError
// when bad), logs one "starting" line with the version and the
// configuration (secrets masked), starts tracing, runs the service, and
// then flushes its spans within the service's SHUTDOWN_TIMEOUT.
func Run[C any](ctx context.Context, svc Service[C], version string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if IsVersion(args) {
		fmt.Fprintln(stdout, svc.Name, version)
		return nil
	}
	var cfg C
	var level string
	var tc telemetry.Config
	set := config.New(svc.Name)
	svc.Declare(&cfg, set)
	set.Enum(&level, "LOG_LEVEL", "info", "log level", "debug", "info", "warn", "error")
	tc.Declare(set)
	if err := set.Parse(args, getenv); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(stdout)
			return nil
		}
		return Usage(err)
	}
	if svc.Validate != nil {
		if err := svc.Validate(&cfg); err != nil {
			return Usage(err)
		}
	}
	log, err := logging.New(stdout, level, svc.Name)
	if err != nil {
		return Usage(config.Errorf("LOG_LEVEL", "%v", err))
	}
	log.Info("starting", "version", version, slog.Group("config", set.Attrs()...))
	tel, err := telemetry.Start(ctx, svc.Name, version, tc)
	if err != nil {
		return Usage(err)
	}
	if tel.On() {
		log.Info("tracing on", "endpoint", tc.Where())
	}
	err = svc.Run(ctx, &cfg, Env{Version: version, Log: log, Stdout: stdout, Stderr: stderr, Telemetry: tel})
	// Run has closed its clients: the spans of its last work are buffered
	// and go out now, within SHUTDOWN_TIMEOUT.
	timeout := DefaultShutdownTimeout
	if svc.ShutdownTimeout != nil {
		timeout = svc.ShutdownTimeout(&cfg)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	if ferr := tel.Shutdown(sctx); ferr != nil {
		log.Warn("flushing traces", "err", ferr)
	}
	cancel()
	if err != nil {
		log.Error("stopped", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// Exit codes.
const (
	ExitOK      = 0 // success, also after a graceful stop on SIGTERM
	ExitFailure = 1 // runtime failure: a dependency, the network...
	ExitUsage   = 2 // bad configuration or usage: fix the deployment
)

// UsageError marks a failure the operator fixes in the deployment rather
// than by restarting: exit code 2. A *config.Error is one without wrapping.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// ExitCode maps a service's error to its exit code: nil and config.ErrHelp
// are 0, a *UsageError or *config.Error is 2, anything else 1.
func ExitCode(err error) int {
	var ue *UsageError
	var ce *config.Error
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
		return ExitOK
	case errors.As(err, &ue), errors.As(err, &ce):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Report writes err to stderr as one line prefixed with the service name
// (unless the message already starts with it) and returns its exit code.
// Nothing is written for nil or config.ErrHelp.
func Report(stderr io.Writer, service string, err error) int {
	code := ExitCode(err)
	if code == ExitOK {
		return code
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if !strings.HasPrefix(msg, service) {
		msg = service + ": " + msg
	}
	fmt.Fprintln(stderr, msg)
	return code
}

// IsVersion reports whether args (without the program name) ask for the
// version: --version, -version or version.
func IsVersion(args []string) bool {
	return len(args) == 1 && slices.Contains([]string{"--version", "-version", "version"}, args[0])
}

// HostPort is the config check of a listen address: [host]:port with a
// numeric port.
func HostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not [host]:port (like :8000 or 127.0.0.1:8000)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}

// healthcheck is the `<service> healthcheck` subcommand: it probes the
// /healthz of the service listening on HTTP_ADDR (or --http-addr, default
// defaultAddr) and returns 0 healthy, 1 not, 2 bad usage. args are the
// subcommand's own arguments.
func healthcheck(ctx context.Context, service, defaultAddr string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var addr string
	name := service + " healthcheck"
	set := config.New(name)
	set.String(&addr, "HTTP_ADDR", defaultAddr, "listen address of the "+service+" to probe", HostPort)
	if err := set.Parse(args, getenv); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(stdout)
			return ExitOK
		}
		return Report(stderr, name, Usage(err))
	}
	if err := ops.Healthcheck(ctx, addr); err != nil {
		return Report(stderr, name, err)
	}
	fmt.Fprintln(stdout, "healthy")
	return ExitOK
}
