package stackfile

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// versionProbe is stamped into the test builds the way the Dockerfile stamps
// VERSION: if main.version does not exist, the linker silently drops it.
const versionProbe = "stackfile-version-probe-0.0.0"

var (
	binMu   sync.Mutex
	binDir  string
	binDone = map[string]binResult{}

	ctxOnce sync.Once
	ctxDir  string
	ctxErr  error
)

// buildContext copies the repository into a temporary directory the way
// `docker build .` sends it to the builder (everything but what .dockerignore
// excludes) and runs the Dockerfile's `go mod download` step in it. The
// service binaries are built from this copy, so a file the build needs but
// .dockerignore drops fails the build here as it would in Docker.
func buildContext(t *testing.T) (string, error) {
	t.Helper()
	ctxOnce.Do(func() {
		excluded := dockerignore(t)
		root := repoRoot(t)
		ctxDir, ctxErr = os.MkdirTemp("", "stackfile-context-")
		if ctxErr != nil {
			return
		}
		ctxErr = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (another package's test files)
			}
			if err != nil || path == root {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			if excluded(filepath.ToSlash(rel)) {
				if d.IsDir() {
					return filepath.SkipDir // .dockerignore has no ! exceptions
				}
				return nil
			}
			dst := filepath.Join(ctxDir, rel)
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if ctxErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, ctxErr = goCmdIn(ctx, t, ctxDir, []string{"CGO_ENABLED=0"}, "mod", "download")
	})
	return ctxDir, ctxErr
}

type binResult struct {
	path string
	skip string
	err  error
}

// serviceBinary returns the path of a service built from the workspace with
// the Dockerfile's flags (CGO_ENABLED=0, -trimpath, -ldflags -X
// main.version=...). The first call builds every service in one `go build`
// (one compile graph, so both cores work on the shared dependencies at
// once, instead of three builds one after the other). It skips the test
// while the service's main package does not exist yet.
func serviceBinary(t *testing.T, name string) string {
	t.Helper()
	binMu.Lock()
	if len(binDone) == 0 {
		buildServices(t)
	}
	r := binDone[name]
	binMu.Unlock()
	switch {
	case r.skip != "":
		t.Skip(r.skip)
	case r.err != nil:
		t.Fatal(r.err)
	case r.path == "":
		t.Fatalf("service %s is not one of %v", name, goServices)
	}
	return r.path
}

// buildServices builds every service that exists into binDir and records
// each one's result in binDone. Called with binMu held.
func buildServices(t *testing.T) {
	var pkgs, names []string
	for _, name := range goServices {
		pkg := "./" + name + "/cmd/" + name
		if _, err := os.Stat(filepath.Join(repoRoot(t), filepath.FromSlash(pkg))); err != nil {
			binDone[name] = binResult{skip: "service " + name + ": " + pkg + " does not exist yet (being written); its binary cannot be checked"}
			continue
		}
		pkgs = append(pkgs, pkg)
		names = append(names, name)
	}
	fail := func(err error) {
		for _, name := range names {
			binDone[name] = binResult{err: err}
		}
	}
	if len(pkgs) == 0 {
		return
	}
	src, err := buildContext(t)
	if err != nil {
		fail(errors.New("prepare the build context as docker build does (copy without .dockerignore's files, go mod download): " + err.Error()))
		return
	}
	dir, err := os.MkdirTemp("", "stackfile-bin-")
	if err != nil {
		fail(err)
		return
	}
	binDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + versionProbe, "-o", binDir + string(filepath.Separator)}, pkgs...)
	if _, err := goCmdIn(ctx, t, src, []string{"CGO_ENABLED=0"}, args...); err != nil {
		fail(errors.New("build " + strings.Join(names, ", ") + " from the build context as the Dockerfile does: " + err.Error()))
		return
	}
	for _, name := range names {
		binDone[name] = binResult{path: filepath.Join(binDir, name)}
	}
}

func removeBinaries() {
	for _, dir := range []string{binDir, ctxDir} {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
}

// runBinary runs a service binary with a minimal environment plus env,
// and returns its output (stdout and stderr interleaved) and exit code.
func runBinary(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := runTo(t, bin, env, &out, &out, args...)
	return out.String(), code
}

// runTo runs a service binary with a minimal environment plus env, writing
// to stdout and stderr, and returns its exit code.
func runTo(t *testing.T, bin string, env []string, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within 60s (does it start the service instead?)", filepath.Base(bin), strings.Join(args, " "))
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return exitErr.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
		return -1
	}
}

func TestServiceBinariesBuildLikeTheImage(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			bin := serviceBinary(t, name)
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(versionProbe)) {
				t.Errorf("%s: -X main.version=... did not stamp the binary: package main of %s/cmd/%s must declare `var version = \"dev\"`", name, name, name)
			}
			info, err := buildinfo.Read(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: read build info: %v", name, err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
				t.Errorf("%s: build settings CGO_ENABLED=%q -trimpath=%q", name, settings["CGO_ENABLED"], settings["-trimpath"])
			}
			// The image must not carry the in-process test infrastructure.
			for _, dep := range info.Deps {
				if strings.HasPrefix(dep.Path, "github.com/FerretDB/") || strings.HasPrefix(dep.Path, "github.com/commentflow/commentflow/devstack") {
					t.Errorf("%s: the binary links %s", name, dep.Path)
				}
			}
		})
	}
}

// envNames finds the environment variable names a --help text mentions.
var envNames = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`)

func TestComposeSetsOnlyVariablesTheServicesRead(t *testing.T) {
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			bin := serviceBinary(t, name)
			help, code := runBinary(t, bin, nil, "--help")
			if code != 0 && code != 2 {
				t.Fatalf("%s --help exited %d:\n%s", name, code, help)
			}
			read := map[string]bool{}
			for _, v := range envNames.FindAllString(help, -1) {
				read[v] = true
			}
			for _, must := range []string{"HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
				if !read[must] {
					t.Errorf("%s --help does not list %s; output:\n%s", name, must, help)
				}
			}
			var keys []string
			for k := range service(t, name).Environment {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if !read[k] {
					t.Errorf("docker-compose.yml sets %s for %s, which %s --help does not list (a typo, or a variable the service does not read)", k, name, name)
				}
			}
		})
	}
}

func TestHealthcheckSubcommand(t *testing.T) {
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			bin := serviceBinary(t, name)
			var hits int
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if r.URL.Path == "/healthz" {
					hits++
				}
				w.WriteHeader(http.StatusOK)
			}))
			_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			env := []string{"HTTP_ADDR=:" + port}

			if out, code := runBinary(t, bin, env, "healthcheck"); code != 0 {
				t.Errorf("%s healthcheck against a healthy /healthz exited %d:\n%s", name, code, out)
			}
			mu.Lock()
			got := hits
			mu.Unlock()
			if got == 0 {
				t.Errorf("%s healthcheck did not GET /healthz on HTTP_ADDR's port", name)
			}

			srv.Close()
			if out, code := runBinary(t, bin, env, "healthcheck"); code != 1 {
				t.Errorf("%s healthcheck with nothing listening exited %d, want 1:\n%s", name, code, out)
			}
		})
	}
}
