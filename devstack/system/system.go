// Package system runs the whole of commentflow without Docker: the
// in-process infrastructure (infra) and the real service binaries as
// processes (procs), wired with the same environment variables as
// docker-compose.yml. `go run ./devstack` and the end-to-end tests use it.
package system

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/procs"
)

// Config says what to run. Zero ports are picked free at random.
type Config struct {
	DataDir string // broker log, database, registry, binaries; kept across runs
	Fresh   bool   // wipe DataDir first

	KafkaPort, RegistryPort, MongoPort, GatewayPort int

	Rate          float64  // producer events per second; 0 = as fast as possible
	ProducerCount int      // events to produce, then the producer exits; 0 = until stopped
	NoProducer    bool     // do not start a producer
	Consumers     int      // consumer replicas in the group
	LogLevel      string   // services' LOG_LEVEL
	ConsumerEnv   []string // extra KEY=value settings for every consumer
	Env           []string // extra KEY=value settings for every service (e.g. OTEL_*)

	// BuildFlags are extra `go build` flags for the services (e.g. -race).
	BuildFlags []string
	// Bins reuses already built binaries by service name (skips the build).
	Bins map[string]string

	Out         io.Writer    // services' prefixed logs; default os.Stdout
	ProducerTee io.Writer    // also receives the producer's raw log lines
	Log         *slog.Logger // devstack's own messages
	InfraLog    *slog.Logger // the stand-ins' logs; default: discarded
}

// System is a running commentflow.
type System struct {
	Infra *infra.Stack
	cfg   Config
	out   io.Writer
	log   *slog.Logger
	bins  map[string]string

	cursorSecret string
	gatewayAddr  string

	mu        sync.Mutex
	producer  *procs.Proc
	consumers []*procs.Proc
	gateway   *procs.Proc
	opsAddr   map[*procs.Proc]string // HTTP_ADDR of each service process
}

// Start builds the services, starts the infrastructure, then the services.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("system: DataDir is required")
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dataDir
	if cfg.Fresh {
		if err := os.RemoveAll(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("system: wipe %s: %w", cfg.DataDir, err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	s := &System{cfg: cfg, out: procs.Console(cfg.Out), log: cfg.Log, bins: cfg.Bins}

	if s.bins == nil {
		root, err := procs.RepoRoot()
		if err != nil {
			return nil, err
		}
		s.log.Info("building services", "into", filepath.Join(cfg.DataDir, "bin"))
		if s.bins, err = procs.Build(ctx, root, filepath.Join(cfg.DataDir, "bin"), nil, cfg.BuildFlags...); err != nil {
			return nil, err
		}
	}
	if s.cursorSecret, err = persistentSecret(filepath.Join(cfg.DataDir, "cursor-secret")); err != nil {
		return nil, err
	}

	s.Infra, err = infra.Start(ctx, infra.Options{
		KafkaPort: cfg.KafkaPort, RegistryPort: cfg.RegistryPort, MongoPort: cfg.MongoPort,
		DataDir: cfg.DataDir, Logger: cfg.InfraLog,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	port := cfg.GatewayPort
	if port == 0 {
		if port, err = infra.FreePort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	s.gatewayAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// The gateway reads the topic for its comment stream.
	if s.gateway, err = s.start("gateway", "gateway", s.gatewayAddr, append(s.mongoEnv(), s.kafkaEnv()...), true); err != nil {
		return nil, err
	}
	for range cfg.Consumers {
		if _, err := s.AddConsumer(); err != nil {
			return nil, err
		}
	}
	if !cfg.NoProducer {
		if _, err := s.StartProducer(cfg.ProducerCount); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *System) kafkaEnv() []string {
	return []string{
		"KAFKA_BROKERS=" + s.Infra.KafkaAddr(),
		"SCHEMA_REGISTRY_URL=" + s.Infra.RegistryURL(),
	}
}

func (s *System) mongoEnv() []string {
	return []string{
		"MONGODB_URI=" + s.Infra.MongoURI(),
		"GATEWAY_CURSOR_SECRET=" + s.cursorSecret,
	}
}

// start runs one service with HTTP_ADDR=addr (":0" style addresses are
// replaced by a free loopback port).
//
// A service is restarted when it exits on its own (restart: unless-stopped),
// except a producer with a count, which is meant to finish: it must not be
// restarted even if it finishes before start returns.
func (s *System) start(service, name, addr string, env []string, restart bool) (*procs.Proc, error) {
	if addr == "" {
		port, err := infra.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	spec := procs.Spec{
		Name:    name,
		Bin:     s.bins[service],
		Env:     append(append([]string{"HTTP_ADDR=" + addr, "LOG_LEVEL=" + s.cfg.LogLevel}, s.cfg.Env...), env...),
		Restart: restart,
	}
	if service == "producer" {
		spec.Tee = s.cfg.ProducerTee
	}
	p, err := procs.Start(spec, s.out, s.log)
	if err != nil {
		return nil, err
	}
	// Like compose's depends_on: service_healthy, return once it answers
	// /healthz (a producer with a count may already have finished).
	if err := waitHealthy(p, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	s.log.Info("started", "service", name, "pid", p.Pid(), "http", "http://"+addr)
	s.mu.Lock()
	if s.opsAddr == nil {
		s.opsAddr = map[*procs.Proc]string{}
	}
	s.opsAddr[p] = addr
	s.mu.Unlock()
	return p, nil
}

// OpsURL is the base URL of a service process's HTTP server: /healthz,
// /readyz and /metrics (for the gateway, also the API). Empty for a process
// this system did not start.
func (s *System) OpsURL(p *procs.Proc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr, ok := s.opsAddr[p]; ok {
		return "http://" + addr
	}
	return ""
}

// Gateway is the gateway process.
func (s *System) Gateway() *procs.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gateway
}

func waitHealthy(p *procs.Proc, url string, within time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s healthcheck: %w", p.Name(), err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
		}
		select {
		case <-p.Exited():
			if p.ExitCode() == 0 {
				return nil
			}
			return fmt.Errorf("%s exited (code %d) before it was healthy", p.Name(), p.ExitCode())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy at %s within %s: %w", p.Name(), url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartProducer starts a producer (count 0 = until stopped). A producer
// with a count exits by itself once every event is acknowledged and is not
// restarted.
func (s *System) StartProducer(count int) (*procs.Proc, error) {
	env := append(s.kafkaEnv(),
		"PRODUCER_RATE="+strconv.FormatFloat(s.cfg.Rate, 'f', -1, 64),
		"PRODUCER_COUNT="+strconv.Itoa(count),
		"PROGRESS=plain",
	)
	p, err := s.start("producer", "producer", "", env, count == 0)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.producer = p
	s.mu.Unlock()
	return p, nil
}

// AddConsumer starts one more consumer replica in the group.
func (s *System) AddConsumer() (*procs.Proc, error) {
	// A replica's identity is its slot, 1..n: the same across the
	// supervisor's restarts of it, and reused after a scale-down, so a
	// restarted replica takes its partitions back as a static member
	// (CONSUMER_INSTANCE_ID) without a rebalance.
	s.mu.Lock()
	name := "consumer-" + strconv.Itoa(len(s.consumers)+1)
	s.mu.Unlock()
	env := append(append(s.kafkaEnv(), s.mongoEnv()[0], "CONSUMER_INSTANCE_ID="+name), s.cfg.ConsumerEnv...)
	p, err := s.start("consumer", name, "", env, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.consumers = append(s.consumers, p)
	s.mu.Unlock()
	return p, nil
}

// RemoveConsumer stops the most recently added consumer gracefully.
func (s *System) RemoveConsumer(timeout time.Duration) error {
	s.mu.Lock()
	if len(s.consumers) == 0 {
		s.mu.Unlock()
		return errors.New("no consumer running")
	}
	p := s.consumers[len(s.consumers)-1]
	s.consumers = s.consumers[:len(s.consumers)-1]
	s.mu.Unlock()
	return p.Stop(timeout)
}

// Consumers are the running consumer replicas.
func (s *System) Consumers() []*procs.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*procs.Proc(nil), s.consumers...)
}

// Producer is the current producer process, if any.
func (s *System) Producer() *procs.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.producer
}

// GatewayURL is the gateway's base URL.
func (s *System) GatewayURL() string { return "http://" + s.gatewayAddr }

// Stop stops the producer first (it flushes), then the consumers (they
// commit), then the gateway, then the infrastructure.
func (s *System) Stop() {
	s.mu.Lock()
	producer, consumers, gateway := s.producer, s.consumers, s.gateway
	s.producer, s.consumers, s.gateway = nil, nil, nil
	s.mu.Unlock()
	stop := func(p *procs.Proc) {
		if p == nil {
			return
		}
		if err := p.Stop(20 * time.Second); err != nil {
			s.log.Warn("stop", "service", p.Name(), "err", err)
		}
	}
	stop(producer)
	var wg sync.WaitGroup
	for _, c := range consumers {
		wg.Go(func() { stop(c) })
	}
	wg.Wait()
	stop(gateway)
	if s.Infra != nil {
		s.Infra.Close()
	}
}

// persistentSecret reads the secret in path, creating a random one the
// first time, so the gateway's cursors stay valid across restarts.
func persistentSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 { //nolint:gosec // G304: path is the cursor-secret file in the devstack data folder the user chose
		return string(b), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", fmt.Errorf("system: save cursor secret: %w", err)
	}
	return secret, nil
}
