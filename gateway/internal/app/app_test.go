package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/syncbuf"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
	"github.com/commentflow/commentflow/platform/mongoconn"
	"github.com/commentflow/commentflow/platform/ops"
)

var mongoURI, kafkaAddr, registryURL string

func TestMain(m *testing.M) {
	os.Exit(infra.Main(m, infra.Options{}, func(ctx context.Context, st *infra.Stack) (func(), error) {
		mongoURI = st.MongoURI()
		kafkaAddr, registryURL = st.KafkaAddr(), st.RegistryURL()
		c, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
		if err != nil {
			return nil, err
		}
		defer func() { _ = c.Disconnect(context.Background()) }()
		return nil, apitest.Insert(ctx, c.Database("commentflow").Collection("comments"), apitest.Comments(50, 7, time.Now()))
	}))
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), Service(), "test", []string{"gateway", "--help"}, env(nil), &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var cfg Config
	set := config.New(service)
	cfg.declare(set)
	for _, name := range set.Names() {
		flag := "--" + strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if !strings.Contains(stdout.String(), name) || !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not document %s (%s)", name, flag)
		}
	}
	for _, want := range []string{"HTTP_ADDR", ":8000", "MONGODB_URI", "mongodb://localhost:27017", "GATEWAY_CURSOR_SECRET",
		"GATEWAY_CORS_ORIGINS", "GATEWAY_DB_TIMEOUT", "GATEWAY_READ_HEADER_TIMEOUT", "GATEWAY_READ_TIMEOUT",
		"GATEWAY_WRITE_TIMEOUT", "GATEWAY_IDLE_TIMEOUT", "GATEWAY_MAX_HEADER_BYTES", "16384", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "healthcheck",
		"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "KAFKA_TOPIC", "GATEWAY_MAX_STREAMS", "GATEWAY_STREAM_BUFFER", "GATEWAY_STREAM_HEARTBEAT",
		"GATEWAY_STREAM_WRITE_TIMEOUT", "GATEWAY_STREAM_RETRY"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// parseConfig parses and validates as cli.Main does.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var cfg Config
	set := config.New(service)
	cfg.declare(set)
	if err := set.Parse(args, getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func TestDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr: ":8000", Mongo: mongoconn.Config{URI: "mongodb://localhost:27017", Database: "commentflow", Collection: "comments"},
		DBTimeout: 5 * time.Second, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16384,
		ShutdownTimeout: 10 * time.Second,
		Kafka:           kafkaconn.Config{Brokers: []string{"localhost:19092"}, RegistryURL: "http://localhost:18081"},
		Topic:           "comments", MaxStreams: 100, StreamBuffer: 256, StreamHeartbeat: 15 * time.Second,
		StreamWrite: 10 * time.Second, StreamRetry: 2 * time.Second,
	}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("defaults\n got %+v\nwant %+v", cfg, want)
	}
	// A flag wins over its variable.
	cfg, err = parseConfig([]string{"--gateway-db-timeout", "2s", "--gateway-cors-origins", "https://a.example, http://localhost:3000"},
		env(map[string]string{"GATEWAY_DB_TIMEOUT": "3s", "MONGODB_COLLECTION": "c2"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBTimeout != 2*time.Second || cfg.Mongo.Collection != "c2" || len(cfg.CORSOrigins) != 2 || cfg.CORSOrigins[1] != "http://localhost:3000" {
		t.Errorf("flags and env: %+v", cfg)
	}
}

// TestBadConfig: bad configuration exits 2 with one line naming the
// variable.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		name string // the variable the message must name ("" = a usage error)
	}{
		{env: map[string]string{"HTTP_ADDR": "8000"}, name: "HTTP_ADDR"},
		{env: map[string]string{"HTTP_ADDR": "localhost"}, name: "HTTP_ADDR"},
		{env: map[string]string{"MONGODB_URI": "postgres://db"}, name: "MONGODB_URI"},
		{env: map[string]string{"MONGODB_URI": "mongodb://h:27017/?maxPoolSize=abc"}, name: "MONGODB_URI"},
		{env: map[string]string{"MONGODB_DATABASE": "a/b"}, name: "MONGODB_DATABASE"},
		{env: map[string]string{"MONGODB_COLLECTION": "$cmd"}, name: "MONGODB_COLLECTION"},
		{env: map[string]string{"GATEWAY_CURSOR_SECRET": "short"}, name: "GATEWAY_CURSOR_SECRET"},
		{env: map[string]string{"GATEWAY_CORS_ORIGINS": "example.com"}, name: "GATEWAY_CORS_ORIGINS"},
		{env: map[string]string{"GATEWAY_CORS_ORIGINS": "*,https://a.example"}, name: "GATEWAY_CORS_ORIGINS"},
		{env: map[string]string{"GATEWAY_CORS_ORIGINS": "https://a.example/path"}, name: "GATEWAY_CORS_ORIGINS"},
		{env: map[string]string{"GATEWAY_DB_TIMEOUT": "soon"}, name: "GATEWAY_DB_TIMEOUT"},
		{env: map[string]string{"GATEWAY_DB_TIMEOUT": "-1s"}, name: "GATEWAY_DB_TIMEOUT"},
		{env: map[string]string{"GATEWAY_READ_HEADER_TIMEOUT": "0s"}, name: "GATEWAY_READ_HEADER_TIMEOUT"},
		{env: map[string]string{"GATEWAY_READ_TIMEOUT": "x"}, name: "GATEWAY_READ_TIMEOUT"},
		{env: map[string]string{"GATEWAY_WRITE_TIMEOUT": "1s"}, name: "GATEWAY_WRITE_TIMEOUT"}, // not above the DB timeout
		{env: map[string]string{"GATEWAY_IDLE_TIMEOUT": "forever"}, name: "GATEWAY_IDLE_TIMEOUT"},
		{env: map[string]string{"GATEWAY_MAX_HEADER_BYTES": "10"}, name: "GATEWAY_MAX_HEADER_BYTES"},
		{env: map[string]string{"GATEWAY_MAX_HEADER_BYTES": "lots"}, name: "GATEWAY_MAX_HEADER_BYTES"},
		{env: map[string]string{"LOG_LEVEL": "loud"}, name: "LOG_LEVEL"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "0"}, name: "SHUTDOWN_TIMEOUT"},
		{env: map[string]string{"KAFKA_BROKERS": "nohost"}, name: "KAFKA_BROKERS"},
		{env: map[string]string{"SCHEMA_REGISTRY_URL": "ftp://x"}, name: "SCHEMA_REGISTRY_URL"},
		{env: map[string]string{"GATEWAY_MAX_STREAMS": "0"}, name: "GATEWAY_MAX_STREAMS"},
		{env: map[string]string{"GATEWAY_STREAM_BUFFER": "lots"}, name: "GATEWAY_STREAM_BUFFER"},
		{env: map[string]string{"GATEWAY_STREAM_HEARTBEAT": "0s"}, name: "GATEWAY_STREAM_HEARTBEAT"},
		{env: map[string]string{"GATEWAY_STREAM_WRITE_TIMEOUT": "-1s"}, name: "GATEWAY_STREAM_WRITE_TIMEOUT"},
		{env: map[string]string{"GATEWAY_STREAM_RETRY": "soon"}, name: "GATEWAY_STREAM_RETRY"},
		{args: []string{"--http-addr", "nope"}, env: map[string]string{"HTTP_ADDR": ":9000"}, name: "HTTP_ADDR"},
		{args: []string{"--no-such-flag"}},
		{args: []string{"serve"}},
	} {
		t.Run(fmt.Sprint(tc.env, tc.args), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// Bounded, in case a bad value were accepted and the gateway served.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := cli.Main(ctx, Service(), "test", append([]string{"gateway"}, tc.args...), env(tc.env), &stdout, &stderr)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gateway: ") {
				t.Errorf("want one line on stderr, got %q", msg)
			}
			if tc.name != "" && !strings.Contains(msg, tc.name) {
				t.Errorf("message %q does not name %s", msg, tc.name)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

func TestBadConfigHidesPassword(t *testing.T) {
	var stderr bytes.Buffer
	code := cli.Main(context.Background(), Service(), "test", []string{"gateway"}, env(map[string]string{"MONGODB_URI": "mongodb://u:s3cr3tpw@h:99999/?maxPoolSize=abc"}), io.Discard, &stderr)
	if code != ExitUsage || strings.Contains(stderr.String(), "s3cr3tpw") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

type gateway struct {
	addr   string
	stdout *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

// start runs the gateway in-process on a free port.
func start(t *testing.T, kv map[string]string, wrap func(http.Handler) http.Handler) *gateway {
	t.Helper()
	vars := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "MONGODB_URI": mongoURI, "LOG_LEVEL": "debug"}
	for k, v := range kv {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{stdout: &syncbuf.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() {
		g.done <- cli.Run(ctx, newService(hooks{
			listening: func(a net.Addr) { ready <- a },
			wrap:      wrap,
		}), "test", nil, env(vars), g.stdout, io.Discard)
	}()
	select {
	case a := <-ready:
		g.addr = a.String()
	case err := <-g.done:
		cancel()
		t.Fatalf("gateway stopped: %v\n%s", err, g.stdout)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway did not start listening")
	}
	t.Cleanup(func() {
		g.cancel()
		select {
		case err := <-g.done:
			if err != nil {
				t.Errorf("gateway: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return g
}

// get fetches path over TCP and returns the status and body.
func (g *gateway) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	status, body, err := fetch(t.Context(), "http://"+g.addr+path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return status, body
}

func fetch(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// TestServes: the process serves the API, the docs and the ops endpoints
// over TCP, logs its configuration once with the secret masked, and
// `gateway healthcheck` sees it healthy.
func TestServes(t *testing.T) {
	const secret = "a shared cursor secret for the replicas"
	g := start(t, map[string]string{"GATEWAY_CURSOR_SECRET": secret}, nil)
	for path, want := range map[string]int{
		"/healthz": 200, "/readyz": 200, "/metrics": 200, "/api/v1/comments?limit=3": 200,
		"/api/openapi": 200, "/api/openapi.json": 200, "/api/v1/comments?limit=0": 400, "/nope": 404,
	} {
		if status, body := g.get(t, path); status != want {
			t.Errorf("GET %s: %d, want %d: %s", path, status, want, body)
		}
	}
	// Every service's metrics: commentflow_build_info, and only its own
	// commentflow_gateway_* beside the standard collectors.
	if _, body := g.get(t, "/metrics"); ops.CheckNames(service, string(body)) != nil {
		t.Error(ops.CheckNames(service, string(body)))
	}

	logs := g.stdout.String()
	if strings.Contains(logs, secret) {
		t.Error("the cursor secret was logged")
	}
	var configLines int
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "starting" {
			configLines++
			cfg, _ := rec["config"].(map[string]any)
			if cfg["GATEWAY_CURSOR_SECRET"] != "*****" || cfg["HTTP_ADDR"] != "127.0.0.1:0" || rec["service"] != "gateway" || rec["version"] != "test" {
				t.Errorf("config line %v", rec)
			}
		}
	}
	if configLines != 1 || !strings.Contains(logs, `"msg":"listening"`) {
		t.Errorf("%d config lines; logs:\n%s", configLines, logs)
	}

	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), Service(), "test", []string{"gateway", "healthcheck"}, env(map[string]string{"HTTP_ADDR": g.addr}), &stdout, &stderr); code != 0 {
		t.Errorf("healthcheck: exit %d: %s", code, stderr.String())
	}
	_, port, _ := net.SplitHostPort(g.addr)
	if code := cli.Main(context.Background(), Service(), "test", []string{"gateway", "healthcheck", "--http-addr", ":" + port}, env(nil), &stdout, &stderr); code != 0 {
		t.Errorf("healthcheck --http-addr :%s: exit %d: %s", port, code, stderr.String())
	}
}

// TestCursorSecretShared: replicas with the same GATEWAY_CURSOR_SECRET
// accept each other's cursors; one with another secret does not.
func TestCursorSecretShared(t *testing.T) {
	a := start(t, map[string]string{"GATEWAY_CURSOR_SECRET": "replica secret 0123456789"}, nil)
	b := start(t, map[string]string{"GATEWAY_CURSOR_SECRET": "replica secret 0123456789"}, nil)
	c := start(t, nil, nil) // random secret
	if !strings.Contains(c.stdout.String(), "GATEWAY_CURSOR_SECRET is not set") {
		t.Error("no warning about the random cursor secret")
	}
	_, body := a.get(t, "/api/v1/comments?limit=5")
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil || page.NextCursor == "" {
		t.Fatalf("page %s: %v", body, err)
	}
	next := "/api/v1/comments?limit=5&cursor=" + url.QueryEscape(page.NextCursor)
	if status, body := b.get(t, next); status != http.StatusOK {
		t.Errorf("replica with the same secret: %d %s", status, body)
	}
	if status, _ := c.get(t, next); status != http.StatusBadRequest {
		t.Errorf("replica with another secret: %d", status)
	}
}

// TestGracefulShutdown: on shutdown the gateway stops accepting
// connections, lets the in-flight request finish, and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	// Everything the gateway started (server, database client) is gone
	// once run returns.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer http.DefaultClient.CloseIdleConnections()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	g := start(t, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("limit") == "7" {
				once.Do(func() { close(entered) })
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	type result struct {
		status int
		body   []byte
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		status, body, err := fetch(context.Background(), "http://"+g.addr+"/api/v1/comments?limit=7")
		inflight <- result{status, body, err}
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("request did not reach the handler")
	}

	g.cancel()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(t.Context(), "tcp", g.addr)
		if err != nil {
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-g.done:
		t.Fatalf("run returned before the in-flight request finished: %v", err)
	default:
	}
	close(release)
	r := <-inflight
	if r.err != nil || r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"limit":7`)) {
		t.Errorf("in-flight request: %d %s %v", r.status, r.body, r.err)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
		g.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if !strings.Contains(g.stdout.String(), `"msg":"stopped"`) {
		t.Error("no stopped log line")
	}
}

// TestServerLimits: oversized headers are refused by the server before
// any handler.
func TestServerLimits(t *testing.T) {
	g := start(t, map[string]string{"GATEWAY_MAX_HEADER_BYTES": "2048"}, nil)
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<10))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d", res.StatusCode)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestHealthcheckUnhealthy(t *testing.T) {
	addr := closedAddr(t)
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), Service(), "test", []string{"gateway", "healthcheck"}, env(map[string]string{"HTTP_ADDR": addr}), &stdout, &stderr); code != ExitFailure {
		t.Errorf("healthcheck of nothing: exit %d", code)
	}
	if stderr.Len() == 0 {
		t.Error("healthcheck failure not explained")
	}
}

// TestPortInUse: a runtime failure exits 1 with the reason.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	code := cli.Main(context.Background(), Service(), "test", []string{"gateway"}, env(map[string]string{"HTTP_ADDR": ln.Addr().String(), "MONGODB_URI": mongoURI}), io.Discard, &stderr)
	if code != ExitFailure || !strings.Contains(stderr.String(), "listen") {
		t.Errorf("exit %d: %q", code, stderr.String())
	}
}

// A mongodb+srv:// name that does not resolve (yet) is a runtime failure
// (exit 1: a restart may cure it), not bad configuration (exit 2), and the
// password stays out of the message.
func TestSRVLookupFailureIsARuntimeError(t *testing.T) {
	var stderr bytes.Buffer
	code := cli.Main(context.Background(), Service(), "test", []string{"gateway"},
		env(map[string]string{"HTTP_ADDR": "127.0.0.1:0", "MONGODB_URI": "mongodb+srv://u:hunter2@commentflow.invalid/"}), io.Discard, &stderr)
	if code != ExitFailure || !strings.Contains(stderr.String(), "mongodb") || strings.Contains(stderr.String(), "MONGODB_URI (--mongodb-uri)") {
		t.Errorf("exit %d, stderr %q; want 1, a runtime failure of mongodb", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("stderr leaks the password: %q", stderr.String())
	}
}

// TestStartsWithoutDatabase: the gateway serves (not ready) while MongoDB
// is unreachable, rather than refusing to start.
func TestStartsWithoutDatabase(t *testing.T) {
	dead := closedAddr(t)
	g := start(t, map[string]string{"MONGODB_URI": "mongodb://" + dead, "GATEWAY_DB_TIMEOUT": "300ms"}, nil)
	if status, _ := g.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}
	if status, _ := g.get(t, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d", status)
	}
	if status, _ := g.get(t, "/api/v1/comments"); status != http.StatusServiceUnavailable {
		t.Errorf("list: %d", status)
	}
	if !strings.Contains(g.stdout.String(), "mongodb is not reachable yet") {
		t.Error("no warning about the unreachable database")
	}
}

// Credentials MongoDB refuses are bad configuration (exit 2 at once,
// naming MONGODB_URI, without the password), unlike an unreachable
// database, which the gateway serves through (TestStartsWithoutDatabase).
// The stand-in database answers every SCRAM conversation with
// AuthenticationFailed (code 18), as MongoDB answers a wrong password.
func TestRefusedCredentialsExit2(t *testing.T) {
	var stderr bytes.Buffer
	uri := strings.Replace(mongoURI, "mongodb://", "mongodb://commentflow:hunter2@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := cli.Main(ctx, Service(), "test", []string{"gateway"},
		env(map[string]string{"HTTP_ADDR": "127.0.0.1:0", "MONGODB_URI": uri}), io.Discard, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("the gateway served for a minute with credentials the database refuses (exit %d, stderr %q)", code, stderr.String())
	}
	if code != ExitUsage || !strings.Contains(stderr.String(), "MONGODB_URI") || !strings.Contains(stderr.String(), "refused the credentials") ||
		strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("exit %d, stderr %q; want 2 naming MONGODB_URI (refused the credentials), without the password", code, stderr.String())
	}
}
