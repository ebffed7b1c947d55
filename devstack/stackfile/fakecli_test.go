package stackfile

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakemongosh"
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk"
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakestate"
)

// fakeTool is one of the fake command-line tools under internal/ (fakerpk,
// fakemongosh) that the repository's init scripts run instead of the real
// one. It is built once per test run into a directory that holds nothing
// else, for the front of PATH.
type fakeTool struct {
	cmd      string // the executable's name
	pkg      string // its main package
	stateEnv string // the variable that names its state file

	once sync.Once
	dir  string
	err  error
}

var (
	fakeRPK = &fakeTool{cmd: "rpk", stateEnv: fakerpk.StateEnv,
		pkg: "github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk/cmd/rpk"}
	fakeMongosh = &fakeTool{cmd: "mongosh", stateEnv: fakemongosh.StateEnv,
		pkg: "github.com/commentflow/commentflow/devstack/stackfile/internal/fakemongosh/cmd/mongosh"}
)

func (f *fakeTool) path(t testing.TB) string {
	t.Helper()
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "stackfile-"+f.cmd+"-")
		if f.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, f.err = goCmd(ctx, t, nil, "build", "-o", filepath.Join(f.dir, f.cmd), f.pkg)
	})
	if f.err != nil {
		t.Fatalf("build the fake %s: %v", f.cmd, f.err)
	}
	return f.dir
}

// runScript runs the repository's shell script (a path relative to the
// root) with sh against the fake tool f acting on state, and reads the state
// back. The script's environment is env (after PATH and the state file), then
// what the compose service svc sets, then extraEnv. It returns the combined
// output and the script's error.
func runScript[S any](t *testing.T, f *fakeTool, script string, state *S, env []string, svc types.ServiceConfig, extraEnv []string) (string, error) {
	t.Helper()
	statePath := filepath.Join(t.TempDir(), "state.json")
	if err := fakestate.Save(statePath, state); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(repoRoot(t), filepath.FromSlash(script)))
	cmd.Env = append([]string{
		"PATH=" + f.path(t) + string(os.PathListSeparator) + os.Getenv("PATH"),
		f.stateEnv + "=" + statePath,
	}, env...)
	for k, v := range svc.Environment {
		if v != nil {
			cmd.Env = append(cmd.Env, k+"="+*v)
		}
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	*state = *new(S)
	if err := fakestate.Load(statePath, state); err != nil {
		t.Fatalf("read the fake %s's state: %v", f.cmd, err)
	}
	return out.String(), runErr
}

// scriptCase is one run of an init script against a fake tool whose state is
// an S.
type scriptCase[S any] struct {
	name    string
	setup   func(*S)
	env     []string // extra environment
	wantErr string   // substring of the output; "" = success
	wantLog string   // substring of a successful run's output
	check   func(*testing.T, *S)
}

// runScriptCases runs each case as a subtest: a fresh state from newState,
// the case's setup, run (the script, named script in messages), then the
// expected outcome. finished (if not nil) says whether a successful run left
// the state set up completely.
func runScriptCases[S any](t *testing.T, script string, cases []scriptCase[S], newState func() *S,
	run func(*testing.T, *S, ...string) (string, error), finished func(*S) bool,
) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s := newState()
			if tt.setup != nil {
				tt.setup(s)
			}
			out, err := run(t, s, tt.env...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("%s: %v\n%s", script, err, out)
				}
				if finished != nil && !finished(s) {
					t.Errorf("%s succeeded without finishing: %+v\n%s", script, s, out)
				}
				if !strings.Contains(out, tt.wantLog) {
					t.Errorf("%s output lacks %q:\n%s", script, tt.wantLog, out)
				}
			} else {
				if err == nil {
					t.Fatalf("%s succeeded, want failure %q\n%s", script, tt.wantErr, out)
				}
				if !strings.Contains(out, tt.wantErr) {
					t.Errorf("%s output lacks %q:\n%s", script, tt.wantErr, out)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}
