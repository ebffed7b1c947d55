package stackfile

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// startOrderDep is one dependency as the start-order descriptions spell it:
// "<service> healthy" or "<service> done" (completed successfully).
var startOrderDep = regexp.MustCompile("`?([a-z][a-z0-9-]*)`? (healthy|done)\\b")

// startOrderNames: the service names a description line is about, such as
// "redpanda, mongo, jaeger" or "`consumer` (3 replicas)".
var startOrderNames = regexp.MustCompile("^`?([a-z][a-z0-9-]*)`?$")

// parseStartOrder reads start-order lines, each "<services> | <what they
// wait for>", into service -> dependency -> compose condition.
func parseStartOrder(t *testing.T, where string, lines [][2]string) map[string]map[string]string {
	t.Helper()
	conds := map[string]string{"healthy": types.ServiceConditionHealthy, "done": types.ServiceConditionCompletedSuccessfully}
	out := map[string]map[string]string{}
	for _, l := range lines {
		deps := map[string]string{}
		for _, m := range startOrderDep.FindAllStringSubmatch(l[1], -1) {
			deps[m[1]] = conds[m[2]]
		}
		names := regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(l[0], "")
		for _, n := range strings.Split(names, ",") {
			m := startOrderNames.FindStringSubmatch(strings.TrimSpace(n))
			if m == nil {
				t.Errorf("%s: start order line %q: %q is not a service name", where, l[0], n)
				continue
			}
			out[m[1]] = deps
		}
	}
	return out
}

// checkStartOrder compares a start-order description with the depends_on
// of every service of the stack.
func checkStartOrder(t *testing.T, where string, described map[string]map[string]string, spec stackSpec) {
	t.Helper()
	p, _ := loadStack(t, spec)
	for _, name := range p.ServiceNames() {
		got, ok := described[name]
		if !ok {
			t.Errorf("%s: the start order does not say when %s starts", where, name)
			continue
		}
		want := map[string]string{}
		for dep, d := range stackService(t, spec, name).DependsOn {
			want[dep] = d.Condition
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: the start order says %s waits for %v; depends_on says %v", where, name, fmt.Sprint(got), fmt.Sprint(want))
		}
	}
	for name := range described {
		if !slices.Contains(p.ServiceNames(), name) {
			t.Errorf("%s: the start order names %s, which is no service", where, name)
		}
	}
}

// The comment of docker-compose.yml and the README describe the start order
// service by service; both say what depends_on does (a review found the
// gateway described as not waiting for redpanda-init, then it did).
func TestStartOrderIsDescribedAsItIs(t *testing.T) {
	// docker-compose.yml: "#   <services>   <deps>" lines after "# Start order".
	var lines [][2]string
	in := false
	for _, line := range strings.Split(readRepoFile(t, "docker-compose.yml"), "\n") {
		switch {
		case strings.HasPrefix(line, "# Start order"):
			in = true
		case in && strings.HasPrefix(line, "#   "):
			names, deps, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), "  ")
			lines = append(lines, [2]string{names, deps})
		case in:
			in = false
		}
	}
	if len(lines) == 0 {
		t.Fatal("docker-compose.yml: no \"# Start order\" comment with one \"#   <services>  <what they wait for>\" line per service")
	}
	checkStartOrder(t, "docker-compose.yml", parseStartOrder(t, "docker-compose.yml", lines), observabilityStack)

	// README: the table whose header is "| service | starts once |".
	lines = nil
	in = false
	for _, line := range strings.Split(readRepoFile(t, "README.md"), "\n") {
		switch {
		case strings.HasPrefix(line, "| service | starts once |"):
			in = true
		case in && strings.HasPrefix(line, "| ---"):
		case in && strings.HasPrefix(line, "|"):
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) < 2 {
				t.Fatalf("README: start order row %q has fewer than two cells", line)
			}
			lines = append(lines, [2]string{strings.TrimSpace(cells[0]), cells[1]})
		case in:
			in = false
		}
	}
	if len(lines) == 0 {
		t.Fatal("README: no start order table (| service | starts once |)")
	}
	checkStartOrder(t, "README", parseStartOrder(t, "README", lines), observabilityStack)
}
