// Package cli is the command-line contract every commentflow service keeps:
// exit codes (0 ok, 1 runtime failure, 2 bad configuration or usage), errors
// reported as one line on stderr, `<service> --version`, and the
// `<service> healthcheck` subcommand used by distroless Docker healthchecks.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/ops"
)

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

// Healthcheck is the `<service> healthcheck` subcommand: it probes the
// /healthz of the service listening on HTTP_ADDR (or --http-addr, default
// defaultAddr) and returns 0 healthy, 1 not, 2 bad usage. args are the
// subcommand's own arguments.
func Healthcheck(ctx context.Context, service, defaultAddr string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var addr string
	set := config.New(service + " healthcheck")
	set.String(&addr, "HTTP_ADDR", defaultAddr, "listen address of the "+service+" to probe", HostPort)
	if err := set.Parse(args, getenv); err != nil {
		if errors.Is(err, config.ErrHelp) {
			set.Usage(stdout)
			return ExitOK
		}
		return Report(stderr, service+" healthcheck", Usage(err))
	}
	return ops.Healthcheck(ctx, addr, stdout, stderr)
}
