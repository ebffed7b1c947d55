package stackfile

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// goServices are the services built from this repository: each is a module of
// the workspace with its main package at <name>/cmd/<name>, and a service of
// the same name in docker-compose.yml.
var goServices = []string{"producer", "consumer", "gateway"}

// infraServices are the compose services that run third-party images.
var infraServices = []string{"redpanda", "redpanda-init", "console", "mongo", "jaeger"}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the repository root: the nearest parent of the working
// directory that holds go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = os.ErrNotExist
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("find the repository root (a directory with go.work above the working directory): %v", rootErr)
	}
	return rootDir
}

func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

// goCmd runs the go command in the repository root, in workspace mode.
func goCmd(ctx context.Context, t testing.TB, extraEnv []string, args ...string) ([]byte, error) {
	t.Helper()
	return goCmdIn(ctx, t, repoRoot(t), extraEnv, args...)
}

// goCmdIn runs the go command in dir, in the workspace of dir/go.work.
func goCmdIn(ctx context.Context, t testing.TB, dir string, extraEnv []string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(dir, "go.work"))
	cmd.Env = append(cmd.Env, extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &cmdError{args: args, err: err, stderr: stderr.String()}
	}
	return out, nil
}

type cmdError struct {
	args   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return "go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

var (
	workOnce    sync.Once
	workModules []string
	workGo      string
	workErr     error
)

// workspace returns the module directories of go.work (slash-separated,
// relative to the root, without "./") and its go version.
func workspace(t testing.TB) (modules []string, goVersion string) {
	t.Helper()
	workOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := goCmd(ctx, t, nil, "work", "edit", "-json")
		if err != nil {
			workErr = err
			return
		}
		var w struct {
			Go  string
			Use []struct{ DiskPath string }
		}
		if err := json.Unmarshal(out, &w); err != nil {
			workErr = err
			return
		}
		for _, u := range w.Use {
			workModules = append(workModules, strings.TrimPrefix(filepath.ToSlash(filepath.Clean(u.DiskPath)), "./"))
		}
		slices.Sort(workModules)
		workGo = w.Go
	})
	if workErr != nil {
		t.Fatalf("read go.work: %v", workErr)
	}
	return workModules, workGo
}

// composeProject is docker-compose.yml alone, loaded the way `docker
// compose` does, with an empty interpolation environment so that the
// defaults in the file apply.
func composeProject(t testing.TB) *types.Project {
	t.Helper()
	p, _ := loadStack(t, baseStack)
	return p
}

func service(t testing.TB, name string) types.ServiceConfig {
	t.Helper()
	s, err := composeProject(t).GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

// env returns the value a service's environment sets for key, and whether it
// sets it at all.
func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", ok
	}
	return *v, true
}

// bindMount returns the container path and read-only flag of the bind mount
// whose source is the repository file rel.
func bindMount(t testing.TB, s types.ServiceConfig, rel string) (target string, readOnly bool) {
	t.Helper()
	want := filepath.Join(repoRoot(t), filepath.FromSlash(rel))
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == want {
			return v.Target, v.ReadOnly
		}
	}
	t.Fatalf("service %s: no bind mount of %s (mounts: %+v)", s.Name, rel, s.Volumes)
	return "", false
}
