package ops_test

import (
	"bytes"
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
	var out, errb bytes.Buffer
	if code := ops.Healthcheck(context.Background(), addr, &out, &errb); code != 0 {
		t.Fatalf("healthcheck exit %d: %s", code, errb.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if code := ops.Healthcheck(context.Background(), addr, &out, &errb); code != 1 {
		t.Fatalf("healthcheck of a stopped server: exit %d, want 1", code)
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
