package app_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/commentflow/commentflow/consumer/internal/app"
	"github.com/commentflow/commentflow/platform/cli"
)

func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := mainWith(context.Background(), env, &stdout, &stderr, args...)
	return code, stdout.String(), stderr.String()
}

// mainWith runs the consumer as its main does, with env as the
// environment and args as the flags.
func mainWith(ctx context.Context, env map[string]string, stdout, stderr io.Writer, args ...string) int {
	return cli.Main(ctx, app.Service(), "test", append([]string{"consumer"}, args...), func(k string) string { return env[k] }, stdout, stderr)
}

// Bad configuration exits 2 with one line naming the variable, before
// connecting to anything.
func TestBadConfigurationExits2NamingTheVariable(t *testing.T) {
	tests := []struct {
		name, env, value string
		args             []string
	}{
		{"batch size 0", "CONSUMER_BATCH_SIZE", "0", nil},
		{"batch size not a number", "CONSUMER_BATCH_SIZE", "many", nil},
		{"batch size over MongoDB's batch limit", "CONSUMER_BATCH_SIZE", "100001", nil},
		{"batch timeout 0", "CONSUMER_BATCH_TIMEOUT", "0s", nil},
		{"batch timeout not a duration", "CONSUMER_BATCH_TIMEOUT", "soon", nil},
		{"malformed mongodb uri", "MONGODB_URI", "http://localhost:27017", nil},
		{"mongodb uri without host", "MONGODB_URI", "mongodb://user:hunter2@/db", nil},
		{"unknown write concern", "MONGODB_WRITE_CONCERN", "all", nil},
		{"negative write concern", "MONGODB_WRITE_CONCERN", "-1", nil},
		{"database with a dot", "MONGODB_DATABASE", "comment.flow", nil},
		{"collection with a dollar", "MONGODB_COLLECTION", "com$ments", nil},
		{"broker without port", "KAFKA_BROKERS", "localhost", nil},
		{"registry not http", "SCHEMA_REGISTRY_URL", "ftp://registry", nil},
		{"unknown SASL mechanism", "KAFKA_SASL_MECHANISM", "KERBEROS", nil},
		{"SASL without password", "KAFKA_SASL_USERNAME", "", nil}, // set below with a mechanism
		{"missing CA file", "KAFKA_TLS_CA_FILE", "/nonexistent/ca.pem", nil},
		{"poll records 0", "KAFKA_MAX_POLL_RECORDS", "0", nil},
		{"fetch bytes too small", "KAFKA_FETCH_MAX_BYTES", "10", nil},
		{"dlq topic same as topic", "KAFKA_DLQ_TOPIC", "comments", nil},
		{"empty group", "CONSUMER_GROUP", " ", nil},
		{"instance id with a space", "CONSUMER_INSTANCE_ID", "consumer 1", nil},
		{"session timeout too short", "KAFKA_SESSION_TIMEOUT", "100ms", nil},
		{"http addr without port", "HTTP_ADDR", "9092", nil},
		{"unknown log level", "LOG_LEVEL", "verbose", nil},
		{"negative shutdown timeout", "SHUTDOWN_TIMEOUT", "-1s", nil},
		{"zero startup timeout", "STARTUP_TIMEOUT", "0s", nil},
		{"flag overrides a good variable", "CONSUMER_BATCH_SIZE", "500", []string{"--consumer-batch-size=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{tt.env: tt.value}
			if tt.name == "SASL without password" {
				env = map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}
			}
			code, stdout, stderr := runMain(t, env, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.env) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q: want one line naming %s", stderr, tt.env)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr leaks the password: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	for _, args := range [][]string{{"--no-such-flag"}, {"extra-argument"}} {
		if code, _, stderr := runMain(t, nil, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	if code, stdout, _ := runMain(t, nil, "--version"); code != 0 || stdout != "consumer test\n" {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}

// --help documents every variable with its flag and default.
func TestHelpListsEveryVariable(t *testing.T) {
	code, stdout, _ := runMain(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, v := range []string{
		"KAFKA_BROKERS", "KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE",
		"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "SCHEMA_REGISTRY_URL",
		"SCHEMA_REGISTRY_USERNAME", "SCHEMA_REGISTRY_PASSWORD", "KAFKA_TOPIC", "LOG_LEVEL", "SHUTDOWN_TIMEOUT",
		"HTTP_ADDR", "CONSUMER_GROUP", "KAFKA_DLQ_TOPIC", "MONGODB_URI", "MONGODB_DATABASE", "MONGODB_COLLECTION",
		"MONGODB_WRITE_CONCERN", "CONSUMER_BATCH_SIZE", "CONSUMER_BATCH_TIMEOUT", "KAFKA_FETCH_MAX_BYTES",
		"KAFKA_MAX_POLL_RECORDS", "STARTUP_TIMEOUT", "KAFKA_SESSION_TIMEOUT", "CONSUMER_INSTANCE_ID",
	} {
		flag := "--" + strings.ReplaceAll(strings.ToLower(v), "_", "-")
		if !strings.Contains(stdout, v+" ") || !strings.Contains(stdout, flag+" ") {
			t.Errorf("--help does not document %s (%s)", v, flag)
		}
	}
	for _, def := range []string{":9092", "comments-writer", "comments.dlq", "mongodb://localhost:27017", "majority", "250ms", "16777216"} {
		if !strings.Contains(stdout, def) {
			t.Errorf("--help does not show the default %q", def)
		}
	}
}

// Failures at runtime exit 1: the ops port taken, a dependency that does
// not come up within STARTUP_TIMEOUT, a missing topic.
// A registry that refuses the credentials, or a URL that is no registry,
// can never heal: exit 2 naming the variable, before consuming anything.
func TestRegistryMisconfigurationExits2(t *testing.T) {
	s := newStack(t)
	secured := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("app:right"))))
	defer secured.Close()
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	defer notRegistry.Close()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no credentials", s.env("SCHEMA_REGISTRY_URL", secured.URL()), "SCHEMA_REGISTRY_USERNAME"},
		{"wrong password", s.env("SCHEMA_REGISTRY_URL", secured.URL(), "SCHEMA_REGISTRY_USERNAME", "app", "SCHEMA_REGISTRY_PASSWORD", "wrong"), "SCHEMA_REGISTRY_USERNAME"},
		{"not a registry", s.env("SCHEMA_REGISTRY_URL", notRegistry.URL+"/api"), "SCHEMA_REGISTRY_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, tt.env)
			if code != 2 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("exit %d, stderr %q; want 2 and one line naming %s", code, stderr, tt.want)
			}
			if strings.Contains(stderr, "wrong") {
				t.Errorf("stderr echoes the password: %q", stderr)
			}
		})
	}
	// The right credentials start (and stop) normally.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	env := s.env("SCHEMA_REGISTRY_URL", secured.URL(), "SCHEMA_REGISTRY_USERNAME", "app", "SCHEMA_REGISTRY_PASSWORD", "right")
	if code := mainWith(ctx, env, &stdout, &stderr); code != 0 {
		t.Fatalf("right credentials: exit %d, stderr %q", code, stderr.String())
	}
}

func TestStartupFailuresExit1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newStack(t)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"port taken", s.env("HTTP_ADDR", ln.Addr().String()), "listen"},
		{"no database", s.env("MONGODB_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "STARTUP_TIMEOUT", "1s"), "mongodb not ready within STARTUP_TIMEOUT=1s"},
		// MongoDB is waited for first, with the same STARTUP_TIMEOUT: give
		// the stand-in database time to answer on a busy machine (under
		// -race, creating the indexes has taken over a second).
		{"no broker", s.env("KAFKA_BROKERS", "127.0.0.1:1", "STARTUP_TIMEOUT", "20s"), "kafka not ready within STARTUP_TIMEOUT=20s"},
		{"no topic", s.env("KAFKA_TOPIC", "nope", "STARTUP_TIMEOUT", "20s"), `topic "nope" does not exist`},
		// A mongodb+srv:// name that does not resolve (yet) is a runtime
		// failure that waiting may cure, not bad configuration.
		{"srv name does not resolve", s.env("MONGODB_URI", "mongodb+srv://u:hunter2@commentflow.invalid/?serverSelectionTimeoutMS=200", "STARTUP_TIMEOUT", "1s"), "mongodb not ready within STARTUP_TIMEOUT=1s"},
	}
	// The cases run in parallel; this group returns (and ln stays open)
	// until all are done.
	t.Run("startup", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				code, _, stderr := runMain(t, tt.env)
				if code != 1 || !strings.Contains(stderr, tt.want) {
					t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
				}
				if strings.Contains(stderr, "hunter2") {
					t.Errorf("stderr leaks the password: %q", stderr)
				}
			})
		}
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	if code, _, _ := runMain(t, map[string]string{"HTTP_ADDR": closed.Addr().String()}, "healthcheck"); code != 1 {
		t.Errorf("healthcheck with nothing listening: exit %d, want 1", code)
	}
	if code, _, _ := runMain(t, nil, "healthcheck", "--http-addr", closed.Addr().String()); code != 1 {
		t.Errorf("healthcheck --http-addr with nothing listening: exit %d, want 1", code)
	}
	if code, _, stderr := runMain(t, nil, "healthcheck", "--http-addr", "nope"); code != 2 || !strings.Contains(stderr, "HTTP_ADDR") {
		t.Errorf("healthcheck with a bad address: exit %d, stderr %q; want 2 naming HTTP_ADDR", code, stderr)
	}
}
