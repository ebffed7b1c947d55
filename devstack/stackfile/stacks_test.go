package stackfile

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

// stackSpec says how to load a compose project: which files (relative to the
// repository root, in `docker compose -f` order), which profiles, and which
// interpolation environment (nil: none, so the files' defaults apply).
type stackSpec struct {
	files    []string
	profiles []string
	env      []string
}

func (s stackSpec) key() string {
	return strings.Join(s.files, "+") + "|" + strings.Join(s.profiles, ",") + "|" + strings.Join(s.env, ",")
}

func (s stackSpec) String() string {
	var b strings.Builder
	b.WriteString("docker compose")
	for _, f := range s.files {
		b.WriteString(" -f " + f)
	}
	for _, p := range s.profiles {
		b.WriteString(" --profile " + p)
	}
	if len(s.env) > 0 {
		b.WriteString(" (with " + strings.Join(s.env, " ") + ")")
	}
	return b.String()
}

type loadedStack struct {
	project  *types.Project
	warnings string
	err      error
}

var (
	stacksMu sync.Mutex
	stacks   = map[string]*loadedStack{}
	// logrusMu serializes loads: compose-go warns through logrus's global logger.
	logrusMu sync.Mutex
)

// loadStack loads a compose project the way `docker compose` does (schema
// validation, interpolation, merging of the files, normalization,
// consistency checks), once per spec.
func loadStack(t testing.TB, spec stackSpec) (*types.Project, string) {
	t.Helper()
	stacksMu.Lock()
	l, ok := stacks[spec.key()]
	if !ok {
		l = &loadedStack{}
		stacks[spec.key()] = l
		l.project, l.warnings, l.err = doLoadStack(t, spec)
	}
	stacksMu.Unlock()
	if l.err != nil {
		t.Fatalf("%s: load with compose-go: %v", spec, l.err)
	}
	return l.project, l.warnings
}

func doLoadStack(t testing.TB, spec stackSpec) (*types.Project, string, error) {
	logrusMu.Lock()
	defer logrusMu.Unlock()
	var warnings bytes.Buffer
	logger := logrus.StandardLogger()
	prevOut, prevLevel := logger.Out, logger.Level
	logger.SetOutput(&warnings)
	logger.SetLevel(logrus.WarnLevel)
	defer func() {
		logger.SetOutput(prevOut)
		logger.SetLevel(prevLevel)
	}()

	root := repoRoot(t)
	var files []string
	for _, f := range spec.files {
		files = append(files, filepath.Join(root, filepath.FromSlash(f)))
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(root),
		cli.WithEnv(spec.env),
		cli.WithProfiles(spec.profiles),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	return p, warnings.String(), err
}

// Every way the repository's compose files are meant to be used. Tests that
// hold for the whole stack (LF endings, SELinux labels, localhost ports)
// run on each.
var baseStack = stackSpec{files: []string{"docker-compose.yml"}}

func allStacks() []stackSpec {
	return []stackSpec{baseStack, clusterStack, observabilityStack}
}

func stackService(t testing.TB, spec stackSpec, name string) types.ServiceConfig {
	t.Helper()
	p, _ := loadStack(t, spec)
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", spec, err)
	}
	return s
}

// bindMounts lists every bind mount of every service of every stack: the
// repository files that containers read.
type mount struct {
	stack   stackSpec
	service string
	cfg     types.ServiceVolumeConfig
}

func bindMounts(t testing.TB) []mount {
	t.Helper()
	var out []mount
	for _, spec := range allStacks() {
		p, _ := loadStack(t, spec)
		names := p.ServiceNames()
		slices.Sort(names)
		for _, name := range names {
			s, _ := p.GetService(name)
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind {
					out = append(out, mount{spec, name, v})
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no bind mounts found in any stack")
	}
	return out
}
