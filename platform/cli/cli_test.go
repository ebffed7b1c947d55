package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

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
	hc := func(def string, args []string, getenv func(string) string) int {
		svc := testService(nil)
		svc.DefaultAddr = def
		return cli.Main(ctx, svc, "v1", append([]string{"svc", "healthcheck"}, args...), getenv, &out, &errb)
	}

	if code := hc(":1", nil, env(map[string]string{"HTTP_ADDR": addr})); code != cli.ExitOK {
		t.Fatalf("healthy via HTTP_ADDR: exit %d, %s", code, errb.String())
	}
	if code := hc(":1", []string{"--http-addr", addr}, env(nil)); code != cli.ExitOK {
		t.Fatalf("healthy via --http-addr: exit %d, %s", code, errb.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	if code := hc(closed, nil, env(nil)); code != cli.ExitFailure {
		t.Fatalf("nothing listening at the default: exit %d, want 1", code)
	}
	errb.Reset()
	if code := hc(":1", nil, env(map[string]string{"HTTP_ADDR": "nope"})); code != cli.ExitUsage || !strings.HasPrefix(errb.String(), "svc healthcheck: HTTP_ADDR") {
		t.Fatalf("bad HTTP_ADDR: exit %d, stderr %q; want 2 naming HTTP_ADDR", code, errb.String())
	}
	out.Reset()
	if code := hc(":1", []string{"--help"}, env(nil)); code != cli.ExitOK || !strings.Contains(out.String(), "HTTP_ADDR") {
		t.Fatalf("--help: exit %d, %q", code, out.String())
	}
}

type testConfig struct {
	Rate int
	Name string
}

func testService(run func(context.Context, *testConfig, cli.Env) error) cli.Service[testConfig] {
	return cli.Service[testConfig]{
		Name:        "svc",
		DefaultAddr: ":1",
		Declare: func(c *testConfig, s *config.Set) {
			s.Int(&c.Rate, "SVC_RATE", 1, "rate", config.Min(0))
			s.String(&c.Name, "SVC_NAME", "x", "name")
		},
		Validate: func(c *testConfig) error {
			if c.Name == "bad" {
				return config.Errorf("SVC_NAME", "must not be bad")
			}
			return nil
		},
		Run: run,
	}
}

// Main owns the arguments, --version, --help, the configuration, the
// startup line and the exit code; the service's run sees a parsed config.
func TestMainOwnsTheCommandLine(t *testing.T) {
	var got *testConfig
	svc := testService(func(_ context.Context, c *testConfig, env cli.Env) error {
		got = c
		env.Log.Info("running")
		if c.Rate == 7 {
			return errors.New("broker down")
		}
		return nil
	})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
		runs   bool
	}{
		{"version", []string{"--version"}, nil, 0, "svc v1\n", "", false},
		{"help", []string{"--help"}, nil, 0, "SVC_RATE", "", false},
		{"help lists LOG_LEVEL", []string{"-h"}, nil, 0, "LOG_LEVEL", "", false},
		{"unknown flag", []string{"--nope"}, nil, 2, "", "svc: flag provided but not defined: -nope (see --help)\n", false},
		{"bad variable", nil, map[string]string{"SVC_RATE": "-1"}, 2, "", "svc: SVC_RATE (--svc-rate): must be at least 0, got -1\n", false},
		{"bad combination", nil, map[string]string{"SVC_NAME": "bad"}, 2, "", "svc: SVC_NAME (--svc-name): must not be bad\n", false},
		{"bad log level", nil, map[string]string{"LOG_LEVEL": "loud"}, 2, "", "LOG_LEVEL", false},
		{"runs", []string{"--svc-rate", "3"}, nil, 0, `"msg":"starting"`, "", true},
		{"runtime failure", nil, map[string]string{"SVC_RATE": "7"}, 1, `"msg":"stopped"`, "svc: broker down\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var out, errb bytes.Buffer
			code := cli.Main(context.Background(), svc, "v1", append([]string{"svc"}, tc.args...), env(tc.env), &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) || (tc.stderr == "" && errb.Len() > 0) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
			if (got != nil) != tc.runs {
				t.Fatalf("run called: %v, want %v", got != nil, tc.runs)
			}
			if tc.runs && !strings.Contains(out.String(), `"version":"v1"`) {
				t.Errorf("the starting line lacks the version: %s", out.String())
			}
		})
	}
}

// Main owns tracing too: the OTEL_* switches are declared with the
// service's settings, Run gets the started telemetry in Env, and the spans
// still buffered when Run returns are flushed before Main does.
func TestMainStartsAndFlushesTracing(t *testing.T) {
	got := make(chan *coltracepb.ExportTraceServiceRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		got <- req
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	defer srv.Close()

	var on bool
	svc := testService(func(ctx context.Context, _ *testConfig, env cli.Env) error {
		on = env.Telemetry.On()
		_, span := env.Telemetry.Tracer().Start(ctx, "work")
		span.End() // buffered by the batch processor: only a flush sends it
		return nil
	})
	svc.ShutdownTimeout = func(*testConfig) time.Duration { return time.Minute }
	run := func(m map[string]string, args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), svc, "v1", append([]string{"svc"}, args...), func(k string) string { return m[k] }, &out, &errb)
		return code, out.String() + errb.String()
	}

	if code, out := run(nil, "--help"); code != 0 || !strings.Contains(out, "OTEL_EXPORTER_OTLP_ENDPOINT") || !strings.Contains(out, "OTEL_SDK_DISABLED") {
		t.Fatalf("--help: exit %d, lacks the OTEL_* switches:\n%s", code, out)
	}
	if code, out := run(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "smoke-signals"}); code != cli.ExitUsage || !strings.Contains(out, "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("bad protocol: exit %d, want 2 naming the variable:\n%s", code, out)
	}
	if code, out := run(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_SDK_DISABLED": "true"}); code != 0 || on {
		t.Fatalf("disabled: exit %d, tracing on %v:\n%s", code, on, out)
	}
	if code, out := run(nil); code != 0 || on {
		t.Fatalf("no endpoint: exit %d, tracing on %v:\n%s", code, on, out)
	}
	if len(got) != 0 {
		t.Fatal("spans exported while tracing is off")
	}

	code, out := run(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL})
	if code != 0 || !on {
		t.Fatalf("endpoint set: exit %d, tracing on %v:\n%s", code, on, out)
	}
	if !strings.Contains(out, `"msg":"tracing on"`) {
		t.Errorf("no startup line saying tracing is on:\n%s", out)
	}
	// Main has returned: the span must already be here, not on its way.
	select {
	case req := <-got:
		rs := req.GetResourceSpans()
		if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 ||
			rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "work" {
			t.Fatalf("exported %v, want the one span \"work\"", req)
		}
		var name string
		for _, a := range rs[0].GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				name = a.GetValue().GetStringValue()
			}
		}
		if name != "svc" {
			t.Errorf("service.name = %q, want the service's name svc", name)
		}
	default:
		t.Fatal("Main returned before the buffered span was exported")
	}
}
