package ops_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commentflow/commentflow/platform/ops"
)

func TestEndpoints(t *testing.T) {
	reg := ops.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "commentflow_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	ready := ops.NewReadiness("kafka")
	srv := httptest.NewServer(ops.Handler(reg, ready))
	defer srv.Close()

	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("readyz before ready: %d %s", code, body)
	}
	ready.Set("kafka", nil)
	down := errors.New("mongo down")
	ready.Probe("mongodb", func(context.Context) error { return down })
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "mongo down") {
		t.Fatalf("readyz with failing probe: %d %s", code, body)
	}
	down = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "commentflow_test_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d %s", code, body)
	}
}

func TestServeAndHealthcheck(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	srv := ops.Server("127.0.0.1:0", ops.Handler(ops.NewRegistry(), ops.NewReadiness()), log)
	ln, err := ops.Listen(srv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ops.Serve(ctx, srv, ln, 5*time.Second) }()

	addr := ln.Addr().String()
	if err := ops.Healthcheck(context.Background(), addr); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := ops.Healthcheck(context.Background(), addr); err == nil {
		t.Fatal("healthcheck of a stopped server passed")
	}
	for in, want := range map[string]string{":9091": "http://127.0.0.1:9091/healthz", "0.0.0.0:80": "http://127.0.0.1:80/healthz", "[::]:1": "http://127.0.0.1:1/healthz", "10.0.0.1:5": "http://10.0.0.1:5/healthz"} {
		if got, err := ops.HealthcheckURL(in); err != nil || got != want {
			t.Errorf("HealthcheckURL(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	if !ops.IsHealthcheck([]string{"healthcheck"}) || ops.IsHealthcheck([]string{"--help"}) || ops.IsHealthcheck(nil) {
		t.Error("IsHealthcheck")
	}
}

// Start serves the ops endpoints with commentflow_build_info and the
// standard collectors, under one naming scheme, and outlives ctx until Stop.
func TestStartAndNamingScheme(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o, err := ops.Start(ctx, ops.Options{Service: "svc", Version: "v9", Addr: "127.0.0.1:0",
		ShutdownTimeout: 5 * time.Second, Log: slog.New(slog.DiscardHandler), Pending: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	o.Registry.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: ops.Prefix("svc") + "things_total", Help: "x"}))
	cancel() // the server outlives ctx
	body := func() (int, string) {
		resp, err := http.Get("http://" + o.Addr.String() + "/metrics") //nolint:noctx // a test
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, m := body()
	if code != 200 || !strings.Contains(m, `commentflow_build_info{service="svc",version="v9"} 1`) || !strings.Contains(m, "go_goroutines") || !strings.Contains(m, "process_") {
		t.Fatalf("/metrics %d:\n%s", code, m)
	}
	if err := ops.CheckNames("svc", m); err != nil {
		t.Error(err)
	}
	if err := ops.CheckNames("other", m); err == nil || !strings.Contains(err.Error(), "commentflow_svc_things_total") {
		t.Errorf("CheckNames of another service's metrics: %v", err)
	}
	if err := ops.CheckNames("svc", "# TYPE gateway_http_requests_total counter\n"); err == nil {
		t.Error("CheckNames passed a body without commentflow_build_info")
	}
	if states, ok := o.Ready.Check(context.Background()); ok || states["db"] == nil {
		t.Errorf("readiness %v before Set", states)
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	<-o.Done()
}
