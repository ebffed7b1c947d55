package stackfile

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk"
	"github.com/commentflow/commentflow/schemas"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBinaries()
	for _, f := range []*fakeTool{fakeRPK, fakeMongosh} {
		if f.dir != "" {
			_ = os.RemoveAll(f.dir)
		}
	}
	os.Exit(code)
}

// initScriptVars reads the NAME=value assignments at the top level of
// redpanda/init.sh; NAME="${NAME:-default}" yields the default.
func initScriptVars(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	assign := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
	withDefault := regexp.MustCompile(`^"\$\{([A-Z][A-Z0-9_]*):-(.*)\}"$`)
	sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, "redpanda/init.sh")))
	for sc.Scan() {
		m := assign.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v := m[2]
		if d := withDefault.FindStringSubmatch(v); d != nil && d[1] == m[1] {
			v = d[2]
		}
		vars[m[1]] = strings.Trim(v, `"'`)
	}
	return vars
}

func TestInitScriptIsPOSIXShell(t *testing.T) {
	script := filepath.Join(repoRoot(t), "redpanda", "init.sh")
	first, _, _ := strings.Cut(readRepoFile(t, "redpanda/init.sh"), "\n")
	if first != "#!/bin/sh" {
		t.Errorf("init.sh starts with %q, want #!/bin/sh", first)
	}
	if out, err := exec.CommandContext(t.Context(), "sh", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("sh -n redpanda/init.sh: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("dash"); err == nil {
		if out, err := exec.CommandContext(t.Context(), "dash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("dash -n redpanda/init.sh: %v\n%s", err, out)
		}
	}
	for _, bashism := range []string{"[[", "function ", "pipefail", "$'", "<<<", "local "} {
		if strings.Contains(readRepoFile(t, "redpanda/init.sh"), bashism) {
			t.Errorf("init.sh uses %q, which POSIX sh does not have", bashism)
		}
	}
}

func TestInitScriptNamesMatchSchemasConstants(t *testing.T) {
	vars := initScriptVars(t)
	for name, want := range map[string]string{
		"TOPIC":         schemas.Topic,
		"DLQ_TOPIC":     schemas.DLQTopic,
		"SUBJECT":       schemas.Subject,
		"PARTITIONS":    strconv.Itoa(schemas.Partitions),
		"COMPATIBILITY": "BACKWARD",
	} {
		if vars[name] != want {
			t.Errorf("init.sh: %s=%q, want %q", name, vars[name], want)
		}
	}

	// The compose service mounts the script and the schema where the script
	// looks for them, read-only, and runs the script with sh.
	initSvc := service(t, "redpanda-init")
	scriptTarget, ro := bindMount(t, initSvc, "redpanda/init.sh")
	if !ro {
		t.Error("redpanda-init: init.sh is not mounted read-only")
	}
	if want := []string{"/bin/sh", scriptTarget}; !slices.Equal([]string(initSvc.Entrypoint), want) {
		t.Errorf("redpanda-init: entrypoint = %q, want %q", initSvc.Entrypoint, want)
	}
	schemaTarget, ro := bindMount(t, initSvc, "schemas/comment.avsc")
	if !ro {
		t.Error("redpanda-init: comment.avsc is not mounted read-only")
	}
	if vars["SCHEMA_FILE"] != schemaTarget {
		t.Errorf("init.sh reads the schema from %q, docker-compose.yml mounts it at %q", vars["SCHEMA_FILE"], schemaTarget)
	}
	if got := readRepoFile(t, "schemas/comment.avsc"); got != schemas.CommentSchemaText {
		t.Error("schemas/comment.avsc differs from schemas.CommentSchemaText: init would register another schema than the producer looks up")
	}
}

// runInit runs redpanda/init.sh against the fake rpk on state, with the
// environment docker-compose.yml gives redpanda-init.
func runInit(t *testing.T, state *fakerpk.State, extraEnv ...string) (string, error) {
	t.Helper()
	return runScript(t, fakeRPK, "redpanda/init.sh", state, []string{
		"SCHEMA_FILE=" + filepath.Join(repoRoot(t), "schemas", "comment.avsc"),
		"INIT_RETRY_DELAY=0",
		"INIT_ATTEMPTS=5",
	}, service(t, "redpanda-init"), extraEnv)
}

func TestInitScriptSetsUpAFreshCluster(t *testing.T) {
	s := fakerpk.New()
	out, err := runInit(t, s)
	if err != nil {
		t.Fatalf("init.sh: %v\n%s", err, out)
	}
	want := map[string]int{schemas.Topic: schemas.Partitions, schemas.DLQTopic: schemas.DLQPartitions}
	if fmt.Sprint(s.Topics) != fmt.Sprint(want) {
		t.Errorf("topics = %v, want %v\n%s", s.Topics, want, out)
	}
	if s.Replicas[schemas.Topic] != 1 {
		t.Errorf("replication factor = %d, want 1 on the single broker", s.Replicas[schemas.Topic])
	}
	if s.Subjects[schemas.Subject] != schemas.CommentSchemaText || s.Versions[schemas.Subject] != 1 {
		t.Errorf("subject %s: version %d, schema registered = %v", schemas.Subject, s.Versions[schemas.Subject], s.Subjects[schemas.Subject] == schemas.CommentSchemaText)
	}
	if s.Compat[schemas.Subject] != "BACKWARD" {
		t.Errorf("compatibility of %s = %q, want BACKWARD", schemas.Subject, s.Compat[schemas.Subject])
	}
	// rpk found the cluster through the variables docker-compose.yml sets.
	for _, key := range []string{"RPK_BROKERS", "RPK_ADMIN_HOSTS", "RPK_REGISTRY_HOSTS"} {
		v, _ := env(service(t, "redpanda-init"), key)
		if !slices.Contains(s.Env, key+"="+v) {
			t.Errorf("rpk did not see %s=%s (saw %v)", key, v, s.Env)
		}
	}
	// The schema is registered after the topics, the level set after the schema.
	order := []string{"topic create " + schemas.Topic, "registry schema create", "registry compatibility-level set"}
	last := -1
	for _, prefix := range order {
		i := slices.IndexFunc(s.Calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
		if i <= last {
			t.Errorf("calls out of order (want %q): %q", order, s.Calls)
			break
		}
		last = i
	}
}

func TestInitScriptIsIdempotent(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	s := fakerpk.New()
	if out, err := runInit(t, s); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	id, topics := s.SchemaIDs[schemas.Subject], fmt.Sprint(s.Topics)
	out, err := runInit(t, s)
	if err != nil {
		t.Fatalf("second run on the same cluster: %v\n%s", err, out)
	}
	if s.Versions[schemas.Subject] != 1 || s.SchemaIDs[schemas.Subject] != id {
		t.Errorf("second run: version %d id %d, want version 1 id %d", s.Versions[schemas.Subject], s.SchemaIDs[schemas.Subject], id)
	}
	if fmt.Sprint(s.Topics) != topics {
		t.Errorf("second run changed the topics: %v -> %v", topics, s.Topics)
	}
	if !strings.Contains(out, "already exists") {
		t.Errorf("second run did not report the existing topics:\n%s", out)
	}
}

func TestInitScriptCases(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	tests := []scriptCase[fakerpk.State]{
		{
			name:  "auto-created topic is grown to the partition count",
			setup: func(s *fakerpk.State) { s.Topics[schemas.Topic], s.Replicas[schemas.Topic] = 1, 1 },
			check: func(t *testing.T, s *fakerpk.State) {
				if s.Topics[schemas.Topic] != schemas.Partitions {
					t.Errorf("partitions = %d, want %d", s.Topics[schemas.Topic], schemas.Partitions)
				}
				if !slices.Contains(s.Calls, fmt.Sprintf("topic add-partitions %s --num %d", schemas.Topic, schemas.Partitions-1)) {
					t.Errorf("no add-partitions call: %q", s.Calls)
				}
			},
		},
		{
			name:  "scaled-out topic is left alone",
			setup: func(s *fakerpk.State) { s.Topics[schemas.Topic], s.Replicas[schemas.Topic] = 6, 1 },
			check: func(t *testing.T, s *fakerpk.State) {
				if s.Topics[schemas.Topic] != 6 {
					t.Errorf("partitions = %d, want the 6 it had", s.Topics[schemas.Topic])
				}
			},
		},
		{
			name:  "waits for cluster health",
			setup: func(s *fakerpk.State) { s.UnhealthyN = 3 },
		},
		{
			name:  "waits for the schema registry",
			setup: func(s *fakerpk.State) { s.RegistryN = 3 },
		},
		{
			name:  "retries a schema create that fails transiently",
			setup: func(s *fakerpk.State) { s.SchemaErrN = 2 },
		},
		{
			name:    "schema create keeps failing",
			setup:   func(s *fakerpk.State) { s.SchemaErrN = 100 },
			wantErr: "failed 5 times",
		},
		{
			name:  "replicas for a three-broker cluster",
			setup: func(s *fakerpk.State) { s.Brokers = 3 },
			env:   []string{"REPLICAS=3"},
			check: func(t *testing.T, s *fakerpk.State) {
				if s.Replicas[schemas.Topic] != 3 || s.Replicas[schemas.DLQTopic] != 3 {
					t.Errorf("replicas = %v, want 3", s.Replicas)
				}
			},
		},
		{
			name:    "cluster never healthy",
			setup:   func(s *fakerpk.State) { s.UnhealthyN = 100 },
			wantErr: "cluster health: not ready after 5 attempts",
		},
		{
			name:    "registry never reachable",
			setup:   func(s *fakerpk.State) { s.RegistryN = 100 },
			wantErr: "schema registry: not ready after 5 attempts",
		},
		{
			name: "topic create fails",
			setup: func(s *fakerpk.State) {
				s.CreateErr = "INVALID_REPLICATION_FACTOR: Replication factor is below 1 or larger than the number of available brokers."
			},
			wantErr: "topic comments: create failed",
		},
		{
			name: "incompatible schema already registered",
			setup: func(s *fakerpk.State) {
				s.Subjects[schemas.Subject] = `{"type":"record","name":"Comment","fields":[{"name":"other","type":"int"}]}`
				s.Versions[schemas.Subject], s.Compat[schemas.Subject] = 1, "BACKWARD"
			},
			wantErr: "the registry refused",
			check: func(t *testing.T, s *fakerpk.State) {
				n := 0
				for _, c := range s.Calls {
					if strings.HasPrefix(c, "registry schema create") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("an incompatible schema was submitted %d times, want once (no retries)", n)
				}
			},
		},
		{
			name:    "compatibility level refused",
			setup:   func(s *fakerpk.State) { s.CompatErr = "Invalid compatibility level (42203)" },
			wantErr: "setting compatibility BACKWARD failed",
		},
		{
			name: "an operator's compatibility level is kept",
			setup: func(s *fakerpk.State) {
				s.Subjects[schemas.Subject], s.Versions[schemas.Subject], s.SchemaIDs[schemas.Subject] = schemas.CommentSchemaText, 1, 1
				s.Compat[schemas.Subject] = "FULL_TRANSITIVE"
			},
			wantLog: "compatibility FULL_TRANSITIVE (the subject's own level, kept)",
			check: func(t *testing.T, s *fakerpk.State) {
				if s.Compat[schemas.Subject] != "FULL_TRANSITIVE" {
					t.Errorf("compatibility of %s = %q, want the operator's FULL_TRANSITIVE kept", schemas.Subject, s.Compat[schemas.Subject])
				}
			},
		},
		{
			name: "compatibility level cannot be read",
			setup: func(s *fakerpk.State) {
				s.CompatGetErr = "unable to request: dial tcp 10.0.0.2:8081: connect: connection refused"
			},
			wantErr: "reading its compatibility level failed",
		},
		{
			name:    "schema file not mounted",
			env:     []string{"SCHEMA_FILE=/nonexistent/comment.avsc"},
			wantErr: "is not readable",
		},
	}
	runScriptCases(t, "init.sh", tests, fakerpk.New, runInit, func(s *fakerpk.State) bool {
		return s.Compat[schemas.Subject] != "" && s.Topics[schemas.DLQTopic] != 0
	})
}
