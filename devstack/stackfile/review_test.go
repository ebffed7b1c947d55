package stackfile

import (
	"bufio"
	"context"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A Windows checkout with core.autocrlf turns LF into CRLF; /bin/sh in the
// container then stops at `set -eu\r`, and YAML/JSON readers see stray \r.
// .gitattributes must force LF on every file a container reads.
func TestMountedFilesAreCheckedOutWithLF(t *testing.T) {
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, m := range bindMounts(t) {
		rel, err := filepath.Rel(root, m.cfg.Source)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("%s: %s mounts %s, outside the repository", m.stack, m.service, m.cfg.Source)
			continue
		}
		// A mounted directory: every file in it.
		var files []string
		err = filepath.WalkDir(m.cfg.Source, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			r, err := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(r))
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		for _, rel := range files {
			if seen[rel] {
				continue
			}
			seen[rel] = true
			checkLF(t, root, rel, m.service)
		}
	}
}

func checkLF(t *testing.T, root, rel, service string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	out, err := exec.CommandContext(ctx, "git", "-C", root, "check-attr", "text", "eol", "--", rel).Output()
	cancel()
	if err != nil {
		t.Fatalf("git check-attr: %v", err)
	}
	attrs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "<path>: <attr>: <value>"
		parts := strings.Split(sc.Text(), ": ")
		if len(parts) == 3 {
			attrs[parts[1]] = parts[2]
		}
	}
	if attrs["eol"] != "lf" || attrs["text"] == "unset" {
		t.Errorf("%s (mounted into %s): git check-attr says text=%s eol=%s; want eol=lf from .gitattributes so that a Windows checkout does not write CRLF", rel, service, attrs["text"], attrs["eol"])
	}
	if strings.Contains(readRepoFile(t, rel), "\r") {
		t.Errorf("%s: contains CR characters", rel)
	}
}

// On SELinux hosts (Fedora, RHEL) a container cannot read a bind mount that
// is not relabelled; :z relabels it for sharing between containers.
func TestBindMountsAreRelabelledForSELinux(t *testing.T) {
	for _, m := range bindMounts(t) {
		if m.cfg.Bind == nil || m.cfg.Bind.SELinux != "z" {
			t.Errorf("%s: %s mounts %s without :z (SELinux hosts deny the container access)", m.stack, m.service, m.cfg.Target)
		}
		if !m.cfg.ReadOnly {
			t.Errorf("%s: %s mounts %s read-write", m.stack, m.service, m.cfg.Target)
		}
	}
}

// publishAddressVar is the variable that chooses the host address the
// stack's ports are published on.
const publishAddressVar = "COMMENTFLOW_PUBLISH_ADDRESS"

// The services behind the published ports have no authentication: by
// default they are reachable from this machine only.
func TestHostPortsArePublishedOnLocalhostByDefault(t *testing.T) {
	for _, spec := range allStacks() {
		for _, c := range []struct {
			env  []string
			want string
		}{
			{nil, "127.0.0.1"},
			{[]string{publishAddressVar + "=0.0.0.0"}, "0.0.0.0"},
			{[]string{publishAddressVar + "=192.0.2.7"}, "192.0.2.7"},
		} {
			s := spec
			s.env = c.env
			p, _ := loadStack(t, s)
			n := 0
			for _, name := range p.ServiceNames() {
				svc, _ := p.GetService(name)
				for _, port := range svc.Ports {
					n++
					if port.HostIP != c.want {
						t.Errorf("%s: %s publishes %d on host address %q, want %q", s, name, port.Target, port.HostIP, c.want)
					}
				}
			}
			if n == 0 {
				t.Errorf("%s: no published ports", s)
			}
		}
	}
	readme := readRepoFile(t, "README.md")
	if !strings.Contains(readme, publishAddressVar+"=0.0.0.0") {
		t.Errorf("README does not document %s=0.0.0.0 (publishing on every interface)", publishAddressVar)
	}
}

// consumeBounded: an rpk consume that stops at the partitions' current end
// (or an explicit end offset) instead of waiting for new records.
var consumeBounded = regexp.MustCompile(`(?:-o|--offset)[ =](?:\S*:end|\d*:\d+)\b`)

// waitsForever says why an inspection command would not return on its own
// (on an empty topic, say), or "" if it returns.
func waitsForever(cmd string) string {
	switch {
	case strings.Contains(cmd, "rpk topic consume"):
		if !consumeBounded.MatchString(cmd) {
			return "waits forever on an empty topic; add -o :end (consume up to the current end, then exit)"
		}
	case strings.Contains(cmd, "kcat ") && strings.Contains(cmd, " -C"):
		if !regexp.MustCompile(`\s-e\b`).MatchString(cmd) {
			return "waits forever; add -e (exit at the end of the partitions)"
		}
	case regexp.MustCompile(`(^|\s)mongosh\s`).MatchString(cmd):
		if !regexp.MustCompile(`\s--eval\s`).MatchString(cmd) {
			return "opens an interactive shell; add --eval '<expression>'"
		}
	}
	return ""
}

// inspects says whether a line runs one of the tools waitsForever knows.
func inspects(line string) bool {
	return regexp.MustCompile(`(^|\s)(rpk|kcat|mongosh)\s`).MatchString(line)
}

// Every inspection command in the README and in the devstack banner returns
// on its own, including on an empty topic (the dead-letter topic is normally
// empty).
func TestInspectionCommandsReturn(t *testing.T) {
	inBlock := false
	n := 0
	for i, line := range strings.Split(readRepoFile(t, "README.md"), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock || strings.HasPrefix(strings.TrimSpace(line), "#") || !inspects(line) {
			continue
		}
		n++
		if why := waitsForever(line); why != "" {
			t.Errorf("README line %d: %q %s", i+1, strings.TrimSpace(line), why)
		}
	}
	if n < 5 {
		t.Errorf("README: %d inspection commands found; the test looks in the wrong place", n)
	}
	n = 0
	for i, line := range strings.Split(readRepoFile(t, "devstack/main.go"), "\n") {
		if !inspects(line) || !strings.HasPrefix(line, "  ") {
			continue // the banner's commands are indented raw-string lines
		}
		n++
		if why := waitsForever(line); why != "" {
			t.Errorf("devstack banner (main.go line %d): %q %s", i+1, strings.TrimSpace(line), why)
		}
	}
	if n == 0 {
		t.Error("devstack/main.go: no inspection commands in the banner; the test looks in the wrong place")
	}
}

func TestWaitsForever(t *testing.T) {
	for cmd, returns := range map[string]bool{
		"rpk topic consume comments.dlq -n 5":                         false,
		"rpk topic consume comments.dlq -o :end -n 5":                 true,
		"rpk topic consume comments --offset 0:10":                    true,
		"rpk group describe comments-writer":                          true,
		"kcat -b localhost:19092 -C -t comments -c 5":                 false,
		"kcat -b localhost:19092 -C -t comments -c 5 -e":              true,
		"docker compose exec mongo mongosh commentflow":               false,
		"mongosh 'mongodb://localhost:27017/commentflow' --eval 'db'": true,
	} {
		if got := waitsForever(cmd) == ""; got != returns {
			t.Errorf("waitsForever(%q) = %q: returns %v, want %v", cmd, waitsForever(cmd), got, returns)
		}
	}
}

// The API declares its license (openapi.yaml's info.license): the
// repository carries that license's text, and the README says so.
func TestLicenseIsTheOneTheSpecDeclares(t *testing.T) {
	spec := readRepoFile(t, "gateway/openapi.yaml")
	if !strings.Contains(spec, "license:\n    name: Apache-2.0\n") {
		t.Fatalf("openapi.yaml does not declare license Apache-2.0; update this test with the license the project chose")
	}
	lic := readRepoFile(t, "LICENSE")
	if !strings.HasPrefix(strings.TrimSpace(lic), "Apache License\n                           Version 2.0, January 2004") ||
		!strings.Contains(lic, "END OF TERMS AND CONDITIONS") {
		t.Errorf("LICENSE is not the Apache License 2.0 text")
	}
	if !strings.Contains(readRepoFile(t, "README.md"), "[Apache License 2.0](LICENSE)") {
		t.Errorf("the README does not link the license")
	}
}
