// Package ops is the operational HTTP surface every commentflow service
// exposes: /healthz (the process is alive), /readyz (its dependencies are
// usable, by named check), /metrics (Prometheus), plus graceful serving and
// the probe behind the `healthcheck` subcommand used by distroless Docker
// healthchecks.
//
// Start brings it all up the same way for every service. Metrics follow one
// naming scheme: commentflow_build_info{service,version}, the Go runtime
// and process collectors (go_*, process_*), and the service's own series,
// all named commentflow_<service>_<metric> (Prefix).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness holds named readiness checks. A service marks each dependency
// ready or not as it learns (Set), or registers a probe run on every /readyz
// request (Probe). Ready when every check passes.
type Readiness struct {
	mu       sync.Mutex
	states   map[string]error
	probes   map[string]func(context.Context) error
	optional map[string]func(context.Context) error
}

// NewReadiness returns readiness with the named checks initially not ready.
func NewReadiness(pending ...string) *Readiness {
	r := &Readiness{states: map[string]error{}, probes: map[string]func(context.Context) error{}, optional: map[string]func(context.Context) error{}}
	for _, name := range pending {
		r.states[name] = errors.New("starting")
	}
	return r
}

// Set records the state of a check: nil is ready.
func (r *Readiness) Set(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[name] = err
}

// Probe registers a check run on each readiness request.
func (r *Readiness) Probe(name string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probes[name] = fn
}

// Optional registers a check of a part the service can serve without
// (some of its endpoints need it, the rest do not): /readyz reports it by
// name, and while it fails answers 200 with status "degraded" rather than
// take the whole service out of rotation.
func (r *Readiness) Optional(name string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.optional[name] = fn
}

// Optionals runs the optional checks and returns each one's error (nil =
// ok).
func (r *Readiness) Optionals(ctx context.Context) map[string]error {
	r.mu.Lock()
	probes := maps.Clone(r.optional)
	r.mu.Unlock()
	return run(ctx, probes, make(map[string]error, len(probes)))
}

// Check runs the probes and returns every check's error (nil = ready) and
// whether all are ready.
func (r *Readiness) Check(ctx context.Context) (map[string]error, bool) {
	r.mu.Lock()
	out := make(map[string]error, len(r.states)+len(r.probes))
	maps.Copy(out, r.states)
	probes := maps.Clone(r.probes)
	r.mu.Unlock()
	run(ctx, probes, out)
	ok := true
	for _, err := range out {
		if err != nil {
			ok = false
		}
	}
	return out, ok
}

// NewRegistry is a Prometheus registry with the Go runtime and process
// collectors. Services use their own registry, never the global one.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Register registers every collector on reg, stopping at the first error
// (a name registered twice).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Prefix is the start of every metric name of service's own:
// "commentflow_<service>_".
func Prefix(service string) string { return "commentflow_" + service + "_" }

// BuildInfo is commentflow_build_info: always 1, labeled with the
// service and its version.
func BuildInfo(service, version string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "commentflow_build_info",
		Help:        "Always 1; the labels name the service and its running build.",
		ConstLabels: prometheus.Labels{"service": service, "version": version},
	}, func() float64 { return 1 })
}

// Options are what Start needs.
type Options struct {
	Service         string
	Version         string
	Addr            string // HTTP_ADDR
	ShutdownTimeout time.Duration
	Log             *slog.Logger
	Pending         []string // readiness checks not ready until Set
	// Handler, if set, builds what the server serves from the registry and
	// readiness (the gateway serves its API beside the ops endpoints);
	// nil serves Handler(reg, ready).
	Handler func(reg *prometheus.Registry, ready *Readiness) (http.Handler, error)
	// Tune, if set, adjusts the server (timeouts) before it listens.
	Tune func(*http.Server)
}

// Ops is a running ops server.
type Ops struct {
	Registry *prometheus.Registry
	Ready    *Readiness
	Addr     net.Addr // the bound address (the real port when :0 was asked)

	stop context.CancelFunc
	done chan struct{}
	err  error
}

// Start builds the registry (commentflow_build_info, Go and process
// collectors) and the readiness, binds Addr now (a port conflict is a
// startup error) and serves until Stop: the server outlives ctx, so
// /healthz keeps answering while the service finishes its work.
func Start(ctx context.Context, o Options) (*Ops, error) {
	reg := NewRegistry()
	reg.MustRegister(BuildInfo(o.Service, o.Version))
	ready := NewReadiness(o.Pending...)
	reg.MustRegister(ready.Collector(o.Service))
	h := Handler(reg, ready)
	if o.Handler != nil {
		var err error
		if h, err = o.Handler(reg, ready); err != nil {
			return nil, err
		}
	}
	srv := Server(o.Addr, h, o.Log)
	if o.Tune != nil {
		o.Tune(srv)
	}
	ln, err := Listen(srv)
	if err != nil {
		return nil, err
	}
	o.Log.Info("listening", "addr", ln.Addr().String())
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Ops{Registry: reg, Ready: ready, Addr: ln.Addr(), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = Serve(sctx, srv, ln, o.ShutdownTimeout)
	}()
	return s, nil
}

// Done is closed when the server has stopped: after Stop, or when serving
// failed.
func (s *Ops) Done() <-chan struct{} { return s.done }

// Stop shuts the server down gracefully (within the shutdown timeout) and
// returns what serving failed with, if anything.
func (s *Ops) Stop() error {
	s.stop()
	<-s.done
	return s.err
}

// HealthzHandler answers 200 while the process serves HTTP.
func HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// run runs probes (a copy taken under the lock, run without it) into out.
func run(ctx context.Context, probes map[string]func(context.Context) error, out map[string]error) map[string]error {
	for name, fn := range probes {
		out[name] = fn(ctx)
	}
	return out
}

// ReadyzHandler answers 200 when every check passes, 503 otherwise, with
// each check's state in the body.
func ReadyzHandler(r *Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		states, ok := r.Check(ctx)
		optional := r.Optionals(ctx)
		checks := make(map[string]string, len(states)+len(optional))
		describe := func(results map[string]error) (failed bool) {
			for name, err := range results {
				checks[name] = "ok"
				if err != nil {
					checks[name], failed = err.Error(), true
				}
			}
			return failed
		}
		describe(states)
		degraded := describe(optional)
		status, code := "ready", http.StatusOK
		switch {
		case !ok:
			status, code = "not ready", http.StatusServiceUnavailable
		case degraded:
			status = "degraded"
		}
		writeJSON(w, code, map[string]any{"status": status, "checks": checks})
	})
}

// MetricsHandler serves the registry in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Handler is the ops mux: /healthz, /readyz, /metrics.
func Handler(reg *prometheus.Registry, ready *Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", HealthzHandler())
	mux.Handle("GET /readyz", ReadyzHandler(ready))
	mux.Handle("GET /metrics", MetricsHandler(reg))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Server is an HTTP server with the timeouts a service wants.
func Server(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listen binds srv's address now, so a port conflict is a startup error,
// and returns the listener (whose Addr has the real port when :0 was asked).
func Listen(srv *http.Server) (net.Listener, error) {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	return ln, nil
}

// Serve serves srv on ln until ctx is done, then shuts it down gracefully
// within timeout, letting in-flight requests finish.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// HealthcheckURL is the /healthz URL of a service listening on addr
// (":9091", "0.0.0.0:9091", "[::]:9091" all probe loopback).
func HealthcheckURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// Healthcheck probes the service's own /healthz on addr: nil when it
// answers 200.
func Healthcheck(ctx context.Context, addr string) error {
	url, err := HealthcheckURL(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// IsHealthcheck reports whether args (without the program name) ask for
// the healthcheck subcommand.
func IsHealthcheck(args []string) bool {
	return len(args) > 0 && slices.Contains([]string{"healthcheck", "health"}, strings.ToLower(args[0]))
}

// CheckNames checks a /metrics body (Prometheus text format) of service
// against the naming scheme: commentflow_build_info is there, and every
// other metric is the service's own (Prefix(service)) or a client
// library's standard collector (go_, process_, promhttp_). It returns an
// error listing what does not fit.
func CheckNames(service, body string) error {
	var bad []string
	build := false
	for line := range strings.Lines(body) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		name := f[2]
		switch {
		case name == "commentflow_build_info":
			build = true
		case strings.HasPrefix(name, Prefix(service)),
			strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"), strings.HasPrefix(name, "promhttp_"):
		default:
			bad = append(bad, name)
		}
	}
	switch {
	case !build:
		return fmt.Errorf("%s: no commentflow_build_info", service)
	case len(bad) > 0:
		return fmt.Errorf("%s: metrics outside %s*: %s", service, Prefix(service), strings.Join(bad, ", "))
	}
	return nil
}
