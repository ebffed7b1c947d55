package stackfile

import (
	"regexp"
	"strings"
	"testing"
)

// The GitHub workflow runs the steps of .ci/run; the Debian packages .ci/run
// installs for tests that otherwise skip (promtool, chromium) must be
// installed by the workflow too, or those tests skip there unnoticed.
func TestWorkflowInstallsWhatCIRunInstalls(t *testing.T) {
	run := readRepoFile(t, ".ci/run")
	pkgs := regexp.MustCompile(`missing="\$missing ([a-z0-9.+-]+)"`).FindAllStringSubmatch(run, -1)
	if len(pkgs) == 0 {
		t.Fatal(`.ci/run: no missing="$missing <package>" lines; the test looks in the wrong place`)
	}
	wf := readRepoFile(t, ".github/workflows/ci.yml")
	install := regexp.MustCompile(`apt-get install(?:[^\n]*\\\n)*[^\n]*`).FindString(wf)
	if install == "" {
		t.Fatal(".github/workflows/ci.yml: no apt-get install step")
	}
	words := strings.Fields(strings.ReplaceAll(install, "\\", " "))
	for _, p := range pkgs {
		found := false
		for _, w := range words {
			found = found || w == p[1]
		}
		if !found {
			t.Errorf(".github/workflows/ci.yml does not install %s, which .ci/run installs (its tests would skip in the workflow): %q", p[1], install)
		}
	}
}

// The workflow runs .ci/run itself rather than a copy of its steps, so the
// two cannot drift apart (the copy once lacked the e2e kill loop).
func TestWorkflowRunsCIRun(t *testing.T) {
	wf := readRepoFile(t, ".github/workflows/ci.yml")
	if !regexp.MustCompile(`(?m)^\s+run: bash \.ci/run\s*$`).MatchString(wf) {
		t.Errorf(".github/workflows/ci.yml has no step `run: bash .ci/run`")
	}
	var code []string // the workflow without its comments
	for line := range strings.Lines(wf) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code = append(code, line)
		}
	}
	for _, copied := range []string{"go test", "go vet", "gofmt -l", ".ci/lint"} {
		if strings.Contains(strings.Join(code, ""), copied) {
			t.Errorf(".github/workflows/ci.yml runs %q itself; let .ci/run do it", copied)
		}
	}
}
