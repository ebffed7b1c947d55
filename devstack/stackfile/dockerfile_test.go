package stackfile

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd   string   // upper-case keyword: FROM, RUN, COPY...
	flags []string // leading --flags, such as --mount=... or --from=build
	args  string   // the rest
	line  int      // first line, 1-based
}

type stage struct {
	from   instruction
	image  string // base image reference
	name   string // AS name
	instrs []instruction
}

// parseDockerfile is a small parser for the subset of the Dockerfile syntax
// this repository uses: parser directives, comments, backslash continuations,
// instructions with leading --flags. It returns the directives and the stages.
func parseDockerfile(t testing.TB, text string) (map[string]string, []stage) {
	t.Helper()
	directives := map[string]string{}
	var instrs []instruction
	lines := strings.Split(text, "\n")
	inDirectives := true
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "#") {
			if inDirectives {
				if k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), "="); ok && !strings.ContainsAny(k, " \t") {
					directives[strings.ToLower(k)] = strings.TrimSpace(v)
					continue
				}
			}
			inDirectives = false
			continue
		}
		inDirectives = false
		if line == "" {
			continue
		}
		start := i
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			line = strings.TrimSuffix(line, `\`)
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				next = `\` // comment lines inside a continuation are dropped
			}
			line += " " + next
		}
		line = strings.TrimSuffix(line, `\`)
		fields := strings.Fields(line)
		in := instruction{cmd: strings.ToUpper(fields[0]), line: start + 1}
		rest := fields[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
			in.flags = append(in.flags, rest[0])
			rest = rest[1:]
		}
		in.args = strings.Join(rest, " ")
		instrs = append(instrs, in)
	}

	var stages []stage
	for _, in := range instrs {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: in, image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	return directives, stages
}

func dockerfile(t testing.TB) (map[string]string, []stage) {
	t.Helper()
	directives, stages := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (build, runtime)", len(stages))
	}
	return directives, stages
}

// dockerfileEntrypoint is the binary the runtime image's ENTRYPOINT runs.
func dockerfileEntrypoint(t testing.TB) string {
	t.Helper()
	_, stages := dockerfile(t)
	var ep []string
	for _, in := range stages[len(stages)-1].instrs {
		if in.cmd == "ENTRYPOINT" {
			if err := json.Unmarshal([]byte(in.args), &ep); err != nil {
				t.Fatalf("Dockerfile line %d: ENTRYPOINT %s is not exec (JSON) form: %v", in.line, in.args, err)
			}
		}
	}
	if len(ep) != 1 {
		t.Fatalf("runtime stage ENTRYPOINT = %q, want exactly the service binary", ep)
	}
	return ep[0]
}

func hasFlag(in instruction, flag string) bool {
	return slices.Contains(in.flags, flag)
}

func TestDockerfileStages(t *testing.T) {
	directives, stages := dockerfile(t)
	if directives["syntax"] != "docker/dockerfile:1" {
		t.Errorf("syntax directive = %q, want docker/dockerfile:1 (BuildKit frontend for RUN --mount)", directives["syntax"])
	}

	_, goVersion := workspace(t)
	goMinor := strings.Join(strings.SplitN(goVersion, ".", 3)[:2], ".")
	build := stages[0]
	m := regexp.MustCompile(`^golang:(\d+\.\d+)\.\d+-bookworm$`).FindStringSubmatch(build.image)
	switch {
	case m == nil:
		t.Errorf("build stage image = %q, want golang:<exact version>-bookworm", build.image)
	case m[1] != goMinor:
		t.Errorf("build stage image %q is Go %s, go.work says go %s", build.image, m[1], goVersion)
	}
	if build.name != "build" {
		t.Errorf("build stage is named %q, want build", build.name)
	}

	runtime := stages[1]
	if runtime.image != "gcr.io/distroless/static-debian13:nonroot" {
		t.Errorf("runtime image = %q, want gcr.io/distroless/static-debian13:nonroot", runtime.image)
	}
}

func TestDockerfileBuildStage(t *testing.T) {
	_, stages := dockerfile(t)
	build := stages[0].instrs

	copyAll := slices.IndexFunc(build, func(in instruction) bool { return in.cmd == "COPY" && in.args == ". ." })
	if copyAll < 0 {
		t.Fatal("build stage has no COPY . .")
	}

	// Module files before the sources, one COPY per workspace module.
	var copied []string
	goWork := false
	for _, in := range build[:copyAll] {
		if in.cmd != "COPY" {
			continue
		}
		srcs := strings.Fields(in.args)
		for _, src := range srcs[:len(srcs)-1] {
			switch dir, file := path.Split(src); {
			case dir == "" && (file == "go.work" || file == "go.work*"):
				goWork = true
			case file == "go.*" || file == "go.mod":
				copied = append(copied, strings.TrimSuffix(dir, "/"))
			}
		}
	}
	slices.Sort(copied)
	copied = slices.Compact(copied)
	modules, _ := workspace(t)
	if !goWork {
		t.Error("build stage does not COPY go.work before the sources")
	}
	if !slices.Equal(copied, modules) {
		t.Errorf("go.mod files copied before the sources: %v; go.work uses %v (keep the Dockerfile's list in step with go.work)", copied, modules)
	}

	download := slices.IndexFunc(build[:copyAll], func(in instruction) bool {
		return in.cmd == "RUN" && strings.Contains(in.args, "go mod download")
	})
	if download < 0 {
		t.Fatal("build stage has no RUN go mod download before COPY . .")
	}
	if !hasFlag(build[download], "--mount=type=cache,target=/go/pkg/mod") {
		t.Errorf("go mod download does not use a cache mount for /go/pkg/mod: %v", build[download].flags)
	}

	goBuild := slices.IndexFunc(build, func(in instruction) bool { return in.cmd == "RUN" && strings.Contains(in.args, "go build") })
	if goBuild < copyAll {
		t.Fatal("build stage has no RUN go build after COPY . .")
	}
	run := build[goBuild]
	for _, flag := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build"} {
		if !hasFlag(run, flag) {
			t.Errorf("go build RUN lacks %s", flag)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-o /out/app", `"./${SERVICE}/cmd/${SERVICE}"`} {
		if !strings.Contains(run.args, want) {
			t.Errorf("go build RUN lacks %q: %s", want, run.args)
		}
	}

	// The build arguments are declared after the shared download layer (so
	// every service reuses it) and before their use.
	for _, arg := range []string{"SERVICE", "VERSION"} {
		i := slices.IndexFunc(build, func(in instruction) bool {
			name, _, _ := strings.Cut(in.args, "=")
			return in.cmd == "ARG" && name == arg
		})
		if i < 0 {
			t.Errorf("build stage does not declare ARG %s", arg)
		} else if i < download || i > goBuild {
			t.Errorf("ARG %s is declared at line %d; want it after go mod download and before go build", arg, build[i].line)
		}
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	_, stages := dockerfile(t)
	rt := stages[1]
	var user string
	copiedBinary := false
	for _, in := range rt.instrs {
		switch in.cmd {
		case "RUN":
			t.Errorf("line %d: RUN in the distroless stage (it has no shell)", in.line)
		case "USER":
			user = in.args
		case "COPY":
			if hasFlag(in, "--from="+stages[0].name) && in.args == "/out/app "+dockerfileEntrypoint(t) {
				copiedBinary = true
			}
		}
	}
	if user != "nonroot" && user != "nonroot:nonroot" {
		t.Errorf("runtime stage USER = %q, want nonroot", user)
	}
	if !copiedBinary {
		t.Errorf("runtime stage does not COPY --from=%s /out/app %s", stages[0].name, dockerfileEntrypoint(t))
	}
	for _, st := range stages {
		for _, in := range st.instrs {
			if in.cmd == "HEALTHCHECK" {
				t.Errorf("line %d: HEALTHCHECK in the image; docker-compose.yml owns the healthchecks", in.line)
			}
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	directives, stages := parseDockerfile(t, `# syntax=docker/dockerfile:1
# a comment
ARG BASE=x
FROM --platform=$BUILDPLATFORM golang:1 AS build
RUN --mount=type=cache,target=/a \
    # dropped
    echo a && \
    echo b
FROM scratch
ENTRYPOINT ["/app"]
`)
	if directives["syntax"] != "docker/dockerfile:1" {
		t.Errorf("directives = %v", directives)
	}
	if len(stages) != 2 || stages[0].name != "build" || stages[0].image != "golang:1" || stages[1].image != "scratch" {
		t.Fatalf("stages = %+v", stages)
	}
	run := stages[0].instrs[0]
	if run.cmd != "RUN" || !hasFlag(run, "--mount=type=cache,target=/a") || run.args != "echo a && echo b" || run.line != 5 {
		t.Errorf("RUN = %+v", run)
	}
}

// contextFiles returns the files a service build reads from the context:
// go.work and its sum, every module's go.mod and go.sum, and the Go and
// embedded files of every workspace package the service binaries (and the
// shared modules) are built from.
func contextFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	files := []string{"go.work"}
	modules, _ := workspace(t)
	for _, m := range modules {
		files = append(files, m+"/go.mod")
	}
	for _, f := range append([]string{"go.work.sum"}, func() (sums []string) {
		for _, m := range modules {
			sums = append(sums, m+"/go.sum")
		}
		return sums
	}()...) {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			files = append(files, f)
		}
	}

	patterns := []string{"./schemas/...", "./platform/..."}
	for _, s := range goServices {
		if _, err := os.Stat(filepath.Join(root, s, "cmd", s)); err == nil {
			patterns = append(patterns, "./"+s+"/cmd/"+s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := goCmd(ctx, t, []string{"CGO_ENABLED=0", "GOOS=linux"},
		append([]string{"list", "-e", "-deps", "-json=Dir,GoFiles,CgoFiles,SFiles,HFiles,EmbedFiles,Module"}, patterns...)...)
	if err != nil {
		t.Fatalf("list the packages of the service builds: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			Dir                                           string
			GoFiles, CgoFiles, SFiles, HFiles, EmbedFiles []string
			Module                                        *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // standard library or a dependency from the module cache
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.EmbedFiles) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	return files
}

// dockerignore returns a predicate that tells whether .dockerignore keeps a
// repository path (slash-separated, relative to the root) out of the build
// context, with Docker's own pattern matcher.
func dockerignore(t testing.TB) func(rel string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return func(rel string) bool {
		t.Helper()
		ex, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			t.Fatalf(".dockerignore match %s: %v", rel, err)
		}
		return ex
	}
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	excluded := dockerignore(t)

	needed := contextFiles(t)
	if len(needed) < 10 {
		t.Fatalf("only %d files found for the service builds: %v", len(needed), needed)
	}
	for _, rel := range needed {
		if excluded(rel) {
			t.Errorf(".dockerignore excludes %s, which the image build needs", rel)
		}
	}
	for _, rel := range []string{
		".git", ".git/HEAD", ".devstack/data.db", "devstack/.devstack/x",
		"producer/producer.test", "devstack/stackfile/compose_test.go", "schemas/testdata/corpus/a",
		"docker-compose.yml", "Dockerfile", "README.md", "redpanda/init.sh",
		"compose.cluster.yml", "mongo/rs-init.sh", "observability/prometheus/prometheus.yml",
	} {
		if !excluded(rel) {
			t.Errorf(".dockerignore keeps %s in the build context", rel)
		}
	}
}
