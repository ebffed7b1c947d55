package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
)

func TestExitCodeAndReport(t *testing.T) {
	cases := []struct {
		err  error
		code int
		line string
	}{
		{nil, cli.ExitOK, ""},
		{config.ErrHelp, cli.ExitOK, ""},
		{fmt.Errorf("wrapped: %w", config.ErrHelp), cli.ExitOK, ""},
		{errors.New("broker down\n  retrying"), cli.ExitFailure, "svc: broker down retrying\n"},
		{cli.Usage(errors.New("unexpected argument")), cli.ExitUsage, "svc: unexpected argument\n"},
		{fmt.Errorf("start: %w", config.Errorf("SVC_RATE", "must be at least 0")), cli.ExitUsage, "svc: start: SVC_RATE (--svc-rate): must be at least 0\n"},
		{errors.New("svc healthcheck: refused"), cli.ExitFailure, "svc healthcheck: refused\n"},
		{fmt.Errorf("startup: %w", context.DeadlineExceeded), cli.ExitFailure, "svc: startup: context deadline exceeded\n"},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		if code := cli.Report(&buf, "svc", tc.err); code != tc.code || buf.String() != tc.line {
			t.Errorf("Report(%v) = %d %q, want %d %q", tc.err, code, buf.String(), tc.code, tc.line)
		}
	}
	if cli.Usage(nil) != nil {
		t.Error("Usage(nil) is not nil")
	}
}

func TestIsVersionAndHostPort(t *testing.T) {
	for args, want := range map[string]bool{"--version": true, "-version": true, "version": true, "--help": false, "": false, "version x": false} {
		if got := cli.IsVersion(strings.Fields(args)); got != want {
			t.Errorf("IsVersion(%q) = %v", args, got)
		}
	}
	for addr, ok := range map[string]bool{":8000": true, "127.0.0.1:0": true, "[::]:9092": true, "8000": false, "localhost": false, ":http": false, ":70000": false, "nope": false} {
		if err := cli.HostPort(addr); (err == nil) != ok {
			t.Errorf("HostPort(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestHealthcheckSubcommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	ctx := context.Background()
	var out, errb bytes.Buffer

	if code := cli.Healthcheck(ctx, "svc", ":1", nil, env(map[string]string{"HTTP_ADDR": addr}), &out, &errb); code != cli.ExitOK {
		t.Fatalf("healthy via HTTP_ADDR: exit %d, %s", code, errb.String())
	}
	if code := cli.Healthcheck(ctx, "svc", ":1", []string{"--http-addr", addr}, env(nil), &out, &errb); code != cli.ExitOK {
		t.Fatalf("healthy via --http-addr: exit %d, %s", code, errb.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	if code := cli.Healthcheck(ctx, "svc", closed, nil, env(nil), &out, &errb); code != cli.ExitFailure {
		t.Fatalf("nothing listening at the default: exit %d, want 1", code)
	}
	errb.Reset()
	if code := cli.Healthcheck(ctx, "svc", ":1", nil, env(map[string]string{"HTTP_ADDR": "nope"}), &out, &errb); code != cli.ExitUsage || !strings.HasPrefix(errb.String(), "svc healthcheck: HTTP_ADDR") {
		t.Fatalf("bad HTTP_ADDR: exit %d, stderr %q; want 2 naming HTTP_ADDR", code, errb.String())
	}
	out.Reset()
	if code := cli.Healthcheck(ctx, "svc", ":1", []string{"--help"}, env(nil), &out, &errb); code != cli.ExitOK || !strings.Contains(out.String(), "HTTP_ADDR") {
		t.Fatalf("--help: exit %d, %q", code, out.String())
	}
}
