package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/syncbuf"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/producer/internal/generate"
	"github.com/commentflow/commentflow/producer/internal/produce"
	"github.com/commentflow/commentflow/schemas"
)

func TestHelpListsEveryVariable(t *testing.T) {
	var cfg Config
	set := config.New(service)
	cfg.declare(set)
	for _, arg := range []string{"--help", "-h"} {
		in := runMain(t, nil, arg)
		if in.code != 0 {
			t.Fatalf("%s: exit %d, want 0; stderr: %s", arg, in.code, in.stderr.String())
		}
		out := in.stdout.String()
		for _, name := range set.Names() {
			if !regexp.MustCompile(`(?m)^` + name + `\s+--` + config.FlagName(name) + `\s+\S+\s+\S`).MatchString(out) {
				t.Errorf("%s: no line for %s with its flag, default and description in:\n%s", arg, name, out)
			}
		}
		for _, want := range []string{"PRODUCER_RATE", "KAFKA_COMPRESSION", "zstd", "SCHEMA_AUTO_REGISTER", "PROGRESS", "LOG_LEVEL", "healthcheck"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: help lacks %q", arg, want)
			}
		}
		if in.stderr.String() != "" {
			t.Errorf("%s: stderr %q, want nothing", arg, in.stderr.String())
		}
	}
	if len(set.Names()) < 24 { // and LOG_LEVEL, cli.Main's
		t.Errorf("only %d variables declared: %v", len(set.Names()), set.Names())
	}
}

func TestVersion(t *testing.T) {
	in := runMain(t, nil, "--version")
	if in.code != 0 || strings.TrimSpace(in.stdout.String()) != "producer test" {
		t.Fatalf("--version: exit %d, stdout %q", in.code, in.stdout.String())
	}
}

// Every kind of bad input exits 2 with one line on stderr naming the
// variable (or the cause), before anything is produced or registered.
func TestBadInputExits2AndProducesNothing(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	defer notRegistry.Close()
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error_code":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
	}))
	defer unauthorized.Close()

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"negative rate", []string{"PRODUCER_RATE", "-1"}, nil, []string{"PRODUCER_RATE", "--producer-rate", ">= 0"}},
		{"rate not a number", []string{"PRODUCER_RATE", "fast"}, nil, []string{"PRODUCER_RATE", "not a number"}},
		{"rate NaN", []string{"PRODUCER_RATE", "NaN"}, nil, []string{"PRODUCER_RATE"}},
		{"negative rate flag", nil, []string{"--producer-rate=-3"}, []string{"PRODUCER_RATE"}},
		{"negative count", []string{"PRODUCER_COUNT", "-5"}, nil, []string{"PRODUCER_COUNT", "at least 0"}},
		{"fractional count", []string{"PRODUCER_COUNT", "1.5"}, nil, []string{"PRODUCER_COUNT", "whole number"}},
		{"empty post pool", []string{"PRODUCER_POSTS", "0"}, nil, []string{"PRODUCER_POSTS"}},
		{"negative seed", []string{"PRODUCER_SEED", "-1"}, nil, []string{"PRODUCER_SEED"}},
		{"unknown compression", []string{"KAFKA_COMPRESSION", "brotli"}, nil, []string{"KAFKA_COMPRESSION", `"brotli"`, "zstd"}},
		{"empty broker list", []string{"KAFKA_BROKERS", " , "}, nil, []string{"KAFKA_BROKERS", "at least one"}},
		{"broker without port", []string{"KAFKA_BROKERS", "localhost"}, nil, []string{"KAFKA_BROKERS", "host:port"}},
		{"broker port out of range", []string{"KAFKA_BROKERS", "localhost:99999"}, nil, []string{"KAFKA_BROKERS", "port"}},
		{"broker as URL", []string{"KAFKA_BROKERS", "kafka://localhost:9092"}, nil, []string{"KAFKA_BROKERS"}},
		{"one bad broker of two", []string{"KAFKA_BROKERS", st.KafkaAddr() + ",nohost"}, nil, []string{"KAFKA_BROKERS", "nohost"}},
		{"registry URL without scheme", []string{"SCHEMA_REGISTRY_URL", "localhost:8081"}, nil, []string{"SCHEMA_REGISTRY_URL"}},
		{"registry URL not http", []string{"SCHEMA_REGISTRY_URL", "ftp://registry:8081"}, nil, []string{"SCHEMA_REGISTRY_URL", "http"}},
		{"registry URL without host", []string{"SCHEMA_REGISTRY_URL", "http://"}, nil, []string{"SCHEMA_REGISTRY_URL", "no host"}},
		{"registry URL malformed", []string{"SCHEMA_REGISTRY_URL", "http://[::1"}, nil, []string{"SCHEMA_REGISTRY_URL"}},
		{"registry URL not a registry", []string{"SCHEMA_REGISTRY_URL", notRegistry.URL}, nil, []string{"SCHEMA_REGISTRY_URL", "not look like a schema registry"}},
		{"registry refuses the credentials", []string{"SCHEMA_REGISTRY_URL", unauthorized.URL, "SCHEMA_REGISTRY_USERNAME", "u", "SCHEMA_REGISTRY_PASSWORD", "wrong"}, nil, []string{"SCHEMA_REGISTRY_USERNAME", "refused the credentials"}},
		{"missing CA file", []string{"KAFKA_TLS_CA_FILE", missing}, nil, []string{"KAFKA_TLS_CA_FILE", "missing.pem"}},
		{"CA file is a directory", []string{"KAFKA_TLS_CA_FILE", dir}, nil, []string{"KAFKA_TLS_CA_FILE", "directory"}},
		{"CA file not PEM", []string{"KAFKA_TLS_CA_FILE", garbage}, nil, []string{"KAFKA_TLS_CA_FILE", "PEM"}},
		{"missing client cert", []string{"KAFKA_TLS_CERT_FILE", missing, "KAFKA_TLS_KEY_FILE", garbage}, nil, []string{"KAFKA_TLS_CERT_FILE", "missing.pem"}},
		{"missing client key", []string{"KAFKA_TLS_CERT_FILE", garbage, "KAFKA_TLS_KEY_FILE", missing}, nil, []string{"KAFKA_TLS_KEY_FILE", "missing.pem"}},
		{"cert without key", []string{"KAFKA_TLS_CERT_FILE", garbage}, nil, []string{"KAFKA_TLS_KEY_FILE"}},
		{"cert and key not PEM", []string{"KAFKA_TLS_CERT_FILE", garbage, "KAFKA_TLS_KEY_FILE", garbage}, nil, []string{"KAFKA_TLS_CERT_FILE"}},
		{"unknown SASL mechanism", []string{"KAFKA_SASL_MECHANISM", "GSSAPI"}, nil, []string{"KAFKA_SASL_MECHANISM"}},
		{"SASL without credentials", []string{"KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"}, nil, []string{"KAFKA_SASL_USERNAME"}},
		{"negative linger", []string{"KAFKA_LINGER", "-1ms"}, nil, []string{"KAFKA_LINGER"}},
		{"linger too long", []string{"KAFKA_LINGER", "2m"}, nil, []string{"KAFKA_LINGER"}},
		{"delivery timeout too short", []string{"KAFKA_DELIVERY_TIMEOUT", "500ms"}, nil, []string{"KAFKA_DELIVERY_TIMEOUT", "1s"}},
		{"startup timeout zero", []string{"STARTUP_TIMEOUT", "0s"}, nil, []string{"STARTUP_TIMEOUT"}},
		{"shutdown timeout not a duration", []string{"SHUTDOWN_TIMEOUT", "soon"}, nil, []string{"SHUTDOWN_TIMEOUT", "duration"}},
		{"auto-register not a boolean", []string{"SCHEMA_AUTO_REGISTER", "maybe"}, nil, []string{"SCHEMA_AUTO_REGISTER"}},
		{"http address without port", []string{"HTTP_ADDR", "9091"}, nil, []string{"HTTP_ADDR"}},
		{"unknown log level", []string{"LOG_LEVEL", "verbose"}, nil, []string{"LOG_LEVEL"}},
		{"unknown progress mode", []string{"PROGRESS", "fancy"}, nil, []string{"PROGRESS"}},
		{"blank topic", []string{"KAFKA_TOPIC", "  "}, nil, []string{"KAFKA_TOPIC"}},
		{"unknown flag", nil, []string{"--nope"}, []string{"--help", "nope"}},
		{"stray argument", nil, []string{"extra"}, []string{"unexpected argument", "extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A count, so that a bad value let through ends the run.
			in := runMain(t, with(baseEnv(st), append([]string{"PRODUCER_COUNT", "1"}, tc.env...)...), tc.args...)
			if in.code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
			}
			checkOneLineError(t, in.stderr.String(), tc.want...)
		})
	}
	if n := kafkatest.Count(t, st.KafkaAddr(), schemas.Topic); n != 0 {
		t.Fatalf("the bad configurations produced %d records", n)
	}
	if subjects := registrySubjects(t, st); len(subjects) != 0 {
		t.Fatalf("the bad configurations registered %v", subjects)
	}
}

func checkOneLineError(t *testing.T, stderr string, want ...string) {
	t.Helper()
	if !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "producer: ") {
		t.Fatalf("stderr %q: want one line starting with \"producer: \"", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
}

func registrySubjects(t *testing.T, st *infra.Stack) []string {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := cl.Subjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return subjects
}

// A subject already holding a schema the producer's cannot read (not
// BACKWARD compatible) is refused: exit 2, nothing registered or produced.
func TestIncompatibleRegisteredSchemaExits2(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	cl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	// srfake, like a registry with compatibility NONE, accepts anything.
	old := `{"type":"record","name":"Comment","namespace":"io.commentflow","fields":[{"name":"id","type":"long"}]}`
	if _, err := cl.CreateSchema(context.Background(), schemas.Subject, sr.Schema{Schema: old, Type: sr.TypeAvro}); err != nil {
		t.Fatal(err)
	}
	in := runMain(t, with(baseEnv(st), "PRODUCER_COUNT", "10"))
	if in.code != ExitUsage {
		t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), "BACKWARD", schemas.Subject, st.RegistryURL())
	if n := kafkatest.Count(t, st.KafkaAddr(), schemas.Topic); n != 0 {
		t.Fatalf("%d records produced, want none", n)
	}
	versions, err := cl.SubjectVersions(context.Background(), schemas.Subject)
	if err != nil || len(versions) != 1 {
		t.Fatalf("subject versions %v, %v: want only the seeded one", versions, err)
	}
}

// A one-shot run produces PRODUCER_COUNT events, logs each at debug level
// exactly as it is on the topic, shows progress, and exits 0.
func TestCountRunProducesEveryEventAndExits(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	const count, seed, posts = 400, 7, 30
	in := runMain(t, with(baseEnv(st),
		"PRODUCER_COUNT", strconv.Itoa(count), "PRODUCER_SEED", strconv.Itoa(seed), "PRODUCER_POSTS", strconv.Itoa(posts),
		"PROGRESS", "plain", "SCHEMA_REGISTRY_USERNAME", "user", "SCHEMA_REGISTRY_PASSWORD", "s3cret"))
	if in.code != 0 {
		t.Fatalf("exit %d; stderr: %s\nstdout: %s", in.code, in.stderr.String(), tail(in.stdout.String()))
	}
	lines := in.logs(t)
	recs := checkTopicMatchesLog(t, st, loggedEvents(t, lines))
	if len(recs) != count {
		t.Fatalf("%d records, want %d", len(recs), count)
	}

	// The same seed generates the same comments, ids included.
	g, err := generate.New(generate.Options{Seed: seed, Posts: posts})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]schemas.Comment{}
	for range count {
		c := g.Comment()
		want[c.ID] = c
	}
	for _, r := range recs {
		w, ok := want[r.Comment.ID]
		got := r.Comment
		got.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
		if !ok || got != w {
			t.Fatalf("record %+v is not what seed %d generates", r.Comment, seed)
		}
	}

	starting, _ := find(lines, "starting")
	cfg, _ := starting["config"].(map[string]any)
	if cfg["SCHEMA_REGISTRY_PASSWORD"] != "*****" || strings.Contains(in.stdout.String(), "s3cret") {
		t.Errorf("the registry password is not masked in the startup line: %v", cfg)
	}
	if cfg["PRODUCER_COUNT"] != strconv.Itoa(count) || starting.str("version") != "test" {
		t.Errorf("startup line %v lacks the version or the configuration", starting)
	}
	producing, ok := find(lines, "producing")
	if !ok || producing.num("seed") != seed || producing.num("schema_id") != float64(recs[0].SchemaID) {
		t.Errorf("producing line %v: want seed %d and schema id %d", producing, seed, recs[0].SchemaID)
	}
	stopped, ok := find(lines, "stopped")
	if !ok || stopped.num("produced") != count || stopped.num("failed") != 0 || stopped.num("pending") != 0 {
		t.Errorf("stopped line %v: want %d produced, none failed or pending", stopped, count)
	}
	if !strings.Contains(in.stderr.String(), fmt.Sprintf("progress: %d/%d events (100.0%%)", count, count)) {
		t.Errorf("stderr lacks the final progress line:\n%s", in.stderr.String())
	}
}

// PROGRESS=bar draws a bar (on any writer when forced) ending at 100%.
func TestProgressBar(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	in := runMain(t, with(baseEnv(st), "PRODUCER_COUNT", "50", "PROGRESS", "bar", "LOG_LEVEL", "info"))
	if in.code != 0 {
		t.Fatalf("exit %d; stderr: %s", in.code, in.stderr.String())
	}
	if out := in.stderr.String(); !strings.Contains(out, "100%") || !strings.Contains(out, "50/50") {
		t.Fatalf("stderr has no finished bar:\n%q", out)
	}
	for mode, want := range map[string]string{
		ProgressAuto + "/0": ProgressOff, ProgressAuto + "/9": ProgressPlain, // a buffer is not a terminal
		ProgressBar + "/0": ProgressPlain, ProgressBar + "/9": ProgressBar,
		ProgressPlain + "/0": ProgressPlain, ProgressOff + "/9": ProgressOff,
	} {
		m, n, _ := strings.Cut(mode, "/")
		count, _ := strconv.ParseInt(n, 10, 64)
		if got := progressMode(m, count, &syncbuf.Buffer{}); got != want {
			t.Errorf("progressMode(%s, count %d) = %s, want %s", m, count, got, want)
		}
	}
}

// Registering again after a restart finds the same schema: one version,
// one ID, compatibility BACKWARD; lookup-only mode then finds it too.
func TestRegistrationIsIdempotentAcrossRestarts(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	env := with(baseEnv(st), "PRODUCER_COUNT", "5", "LOG_LEVEL", "info")
	var ids []float64
	for i, e := range []map[string]string{env, env, with(env, "SCHEMA_AUTO_REGISTER", "false")} {
		in := runMain(t, e)
		if in.code != 0 {
			t.Fatalf("run %d: exit %d; stderr: %s", i, in.code, in.stderr.String())
		}
		msg := "schema registered"
		if i == 2 {
			msg = "schema found"
		}
		l, ok := find(in.logs(t), msg)
		if !ok {
			t.Fatalf("run %d: no %q line", i, msg)
		}
		ids = append(ids, l.num("schema_id"))
		// The first run finds the subject without a level of its own and
		// sets BACKWARD; the second finds that level and keeps it.
		if i < 2 && (l["compatibility"] != "BACKWARD" || l["compatibility_set_by_producer"] != (i == 0)) {
			t.Errorf("run %d: compatibility %v set by the producer %v; want BACKWARD, %v",
				i, l["compatibility"], l["compatibility_set_by_producer"], i == 0)
		}
	}
	if ids[0] == 0 || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("schema ids across runs %v, want the same one", ids)
	}
	cl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	versions, err := cl.SubjectVersions(ctx, schemas.Subject)
	if err != nil || len(versions) != 1 {
		t.Fatalf("subject %s versions %v, %v: want exactly one", schemas.Subject, versions, err)
	}
	compat := cl.Compatibility(ctx, schemas.Subject)
	if len(compat) != 1 || compat[0].Err != nil || compat[0].Level != sr.CompatBackward {
		t.Fatalf("subject compatibility %+v, want BACKWARD", compat)
	}
	recs := kafkatest.ReadAll(t, st.KafkaAddr(), st.RegistryURL(), schemas.Topic)
	if len(recs) != 15 {
		t.Fatalf("%d records after three runs of 5, want 15", len(recs))
	}
	for _, r := range recs {
		if float64(r.SchemaID) != ids[0] {
			t.Fatalf("record framed with schema %d, want %v", r.SchemaID, ids[0])
		}
	}
}

// An operator's compatibility level on the subject is kept, never lowered
// to BACKWARD, and the producer logs the level in force (issue 12).
func TestRegistrationKeepsTheOperatorsCompatibility(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	cl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFullTransitive}, schemas.Subject) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	in := runMain(t, with(baseEnv(st), "PRODUCER_COUNT", "1", "LOG_LEVEL", "info"))
	if in.code != 0 {
		t.Fatalf("exit %d; stderr: %s", in.code, in.stderr.String())
	}
	l, ok := find(in.logs(t), "schema registered")
	if !ok {
		t.Fatal(`no "schema registered" line`)
	}
	if l["compatibility"] != "FULL_TRANSITIVE" || l["compatibility_set_by_producer"] != false {
		t.Errorf("logged compatibility %v, set by the producer %v; want FULL_TRANSITIVE, false",
			l["compatibility"], l["compatibility_set_by_producer"])
	}
	compat := cl.Compatibility(ctx, schemas.Subject)
	if len(compat) != 1 || compat[0].Err != nil || compat[0].Level != sr.CompatFullTransitive {
		t.Fatalf("subject compatibility %+v after the producer ran, want the operator's FULL_TRANSITIVE", compat)
	}
}

// Lookup-only mode against a registry without the schema fails clearly
// once STARTUP_TIMEOUT has given an init step its chance: exit 2.
func TestLookupOnlyFailsWhenUnregistered(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	in := runMain(t, with(baseEnv(st), "SCHEMA_AUTO_REGISTER", "false", "STARTUP_TIMEOUT", "1s", "PRODUCER_COUNT", "5"))
	if in.code != ExitUsage {
		t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), "SCHEMA_AUTO_REGISTER", "lookup-only", schemas.Subject, "register it first")
	if n := kafkatest.Count(t, st.KafkaAddr(), schemas.Topic); n != 0 {
		t.Fatalf("%d records produced, want none", n)
	}
	if subjects := registrySubjects(t, st); len(subjects) != 0 {
		t.Fatalf("lookup-only mode registered %v", subjects)
	}
}

// The producer starts before its dependencies: /healthz answers, /readyz
// says not ready, and once Kafka and the registry come up it produces.
func TestStartupWaitsForKafkaAndRegistry(t *testing.T) {
	kport, rport, hport := freePort(t), freePort(t), freePort(t)
	env := map[string]string{
		"KAFKA_BROKERS":       fmt.Sprintf("127.0.0.1:%d", kport),
		"SCHEMA_REGISTRY_URL": fmt.Sprintf("http://127.0.0.1:%d", rport),
		"HTTP_ADDR":           fmt.Sprintf("127.0.0.1:%d", hport),
		"PRODUCER_COUNT":      "30", "PRODUCER_RATE": "0", "LOG_LEVEL": "debug", "PROGRESS": "off",
		"STARTUP_TIMEOUT": "60s",
	}
	in := startMain(t, env)
	base := "http://" + in.opsAddr(t)
	waitFor(t, "a retry of the brokers", func() bool {
		for _, l := range in.logs(t) {
			if l.msg() == "kafka not ready, retrying" {
				return true
			}
		}
		return false
	})
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz while starting: %d %s", code, body)
	}
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, checkKafka) || !strings.Contains(body, checkRegistry) {
		t.Fatalf("/readyz while starting: %d %s; want 503 naming both checks", code, body)
	}

	st := infra.StartT(t, infra.Options{KafkaPort: kport, RegistryPort: rport})
	if code := in.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, in.stderr.String())
	}
	if recs := checkTopicMatchesLog(t, st, loggedEvents(t, in.logs(t))); len(recs) != 30 {
		t.Fatalf("%d records, want 30", len(recs))
	}
}

// Brokers, a registry or a topic that never come up fail the startup
// after STARTUP_TIMEOUT: a runtime failure, exit 1, naming what was waited
// for.
func TestStartupTimeoutExits1(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	in := runMain(t, with(baseEnv(st), "KAFKA_BROKERS", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "STARTUP_TIMEOUT", "1s"))
	if in.code != ExitRuntime {
		t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitRuntime, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), "kafka", "STARTUP_TIMEOUT=1s")

	in = runMain(t, with(baseEnv(st), "SCHEMA_REGISTRY_URL", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "STARTUP_TIMEOUT", "1s"))
	if in.code != ExitRuntime {
		t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitRuntime, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), "schema registry", "STARTUP_TIMEOUT=1s")

	in = runMain(t, with(baseEnv(st), "KAFKA_TOPIC", "no-such-topic", "STARTUP_TIMEOUT", "1s"))
	if in.code != ExitRuntime {
		t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitRuntime, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), `topic "no-such-topic"`, "UNKNOWN_TOPIC_OR_PARTITION")
}

// Stopping a run (SIGTERM: the context ends) stops generating, flushes, and
// exits 0 with every acknowledged event on the topic and nothing else.
// Meanwhile the ops endpoints and the healthcheck subcommand work.
func TestStopFlushesEveryAcknowledgedEvent(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	in := startMain(t, baseEnv(st))
	addr := in.opsAddr(t)
	base := "http://" + addr
	waitFor(t, "readiness", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	waitFor(t, "1000 acknowledged events", func() bool {
		_, body := get(t, base+"/metrics")
		return metricValue(body, produce.MetricProduced) >= 1000
	})
	_, metrics := get(t, base+"/metrics")
	for _, name := range []string{produce.MetricProduced, produce.MetricErrors, produce.MetricLatency + "_bucket", bufferedMetric, `commentflow_build_info{service="producer"`, "go_goroutines"} {
		if !strings.Contains(metrics, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// Every service's metrics: commentflow_build_info, and only its own
	// commentflow_producer_* (the client's kprom series too) beside the
	// standard collectors.
	if err := ops.CheckNames(service, metrics); err != nil {
		t.Error(err)
	}
	waitFor(t, "a throughput line", func() bool { _, ok := find(in.logs(t), "throughput"); return ok })

	hc := runMain(t, map[string]string{"HTTP_ADDR": addr}, "healthcheck")
	if hc.code != 0 || !strings.Contains(hc.stdout.String(), "healthy") {
		t.Fatalf("healthcheck of a running producer: exit %d, %s %s", hc.code, hc.stdout.String(), hc.stderr.String())
	}

	in.cancel()
	if code := in.wait(t); code != 0 {
		t.Fatalf("exit %d after stop; stderr: %s", code, in.stderr.String())
	}
	lines := in.logs(t)
	logged := loggedEvents(t, lines)
	checkTopicMatchesLog(t, st, logged)
	stopped, _ := find(lines, "stopped")
	if int(stopped.num("produced")) != len(logged) || stopped.num("pending") != 0 || stopped.num("failed") != 0 {
		t.Fatalf("stopped line %v, want %d produced, none pending or failed", stopped, len(logged))
	}

	if hc := runMain(t, map[string]string{"HTTP_ADDR": addr}, "healthcheck"); hc.code != 1 {
		t.Fatalf("healthcheck of a stopped producer: exit %d, want 1", hc.code)
	}
	if hc := runMain(t, map[string]string{"HTTP_ADDR": "nope"}, "healthcheck"); hc.code != ExitUsage {
		t.Fatalf("healthcheck with a bad HTTP_ADDR: exit %d, want %d", hc.code, ExitUsage)
	}
}

// bufferedMetric is the records buffered in the client, not yet
// acknowledged: franz-go's own metric (kprom), under the producer's prefix.
const bufferedMetric = "commentflow_producer_kafka_buffered_produce_records_total"

// metricValue reads an unlabeled sample from the Prometheus text format.
func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// A broker that stops acknowledging cannot hold a shutdown hostage: after
// SHUTDOWN_TIMEOUT the producer gives up (freeing a Run blocked on the full
// buffer) and exits 1, saying how many events were not acknowledged.
func TestShutdownTimeoutGivesUpAndExits1(t *testing.T) {
	st := infra.StartT(t, infra.Options{})
	in := startMain(t, with(baseEnv(st), "SHUTDOWN_TIMEOUT", "1s", "KAFKA_DELIVERY_TIMEOUT", "10m", "LOG_LEVEL", "info"))
	base := "http://" + in.opsAddr(t)
	waitFor(t, "readiness", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	st.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	waitFor(t, "a full buffer", func() bool {
		_, body := get(t, base+"/metrics")
		return metricValue(body, bufferedMetric) >= produce.DefaultMaxBuffered
	})
	in.cancel()
	if code := in.wait(t); code != ExitRuntime {
		t.Fatalf("exit %d, want %d; stderr: %s", code, ExitRuntime, in.stderr.String())
	}
	checkOneLineError(t, in.stderr.String(), "not acknowledged within SHUTDOWN_TIMEOUT=1s")
}
