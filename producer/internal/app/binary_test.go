package app

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/syncbuf"
)

// buildBinary builds cmd/producer the way the Dockerfile does, version
// stamped, into a temporary folder.
func buildBinary(t *testing.T, version string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build the binary with:", err)
	}
	bin := filepath.Join(t.TempDir(), "producer")
	cmd := exec.CommandContext(t.Context(), gobin, "build", "-ldflags", "-X main.version="+version, "-o", bin,
		"github.com/commentflow/commentflow/producer/cmd/producer")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// The real binary, stopped with SIGTERM in the middle of an endless run,
// flushes and exits 0; every event it logged as acknowledged is on the
// topic, and nothing else is.
func TestBinarySIGTERMFlushesAndExits0(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	const version = "test-1.2.3"
	bin := buildBinary(t, version)
	st := infra.StartT(t, infra.Options{})
	env := with(baseEnv(st), "PRODUCER_RATE", "5000")

	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = environ(env)
	var stdout, stderr syncbuf.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = &stderr
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&stdout, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		err := cmd.Wait()
		// Ends the copy to stdout; an io.Pipe's Close always returns nil.
		_ = pw.Close()
		exited <- err
	}()
	// A producer the test leaves running (it failed before the SIGTERM) is
	// killed by exec.CommandContext when t.Context() is canceled, just
	// before the cleanups run; wait until it is reaped.
	t.Cleanup(func() { <-reaped })

	var addr string
	waitFor(t, "500 acknowledged events", func() bool {
		out := stdout.String()
		if addr == "" {
			if l, ok := find(parseLogs(t, out), "listening"); ok {
				addr = l.str("addr")
			}
		}
		return strings.Count(out, `"msg":"event produced"`) >= 500
	})

	hc := exec.CommandContext(t.Context(), bin, "healthcheck")
	hc.Env = environ(map[string]string{"HTTP_ADDR": addr})
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("producer healthcheck: %v: %s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the producer did not exit within 30s of SIGTERM")
	}
	<-copied

	lines := parseLogs(t, stdout.String())
	if l, _ := find(lines, "starting"); l.str("version") != version {
		t.Errorf("starting line %v: want version %q stamped by -ldflags", l, version)
	}
	if _, ok := find(lines, "stopping: flushing buffered events"); !ok {
		t.Errorf("no shutdown line in the logs")
	}
	logged := loggedEvents(t, lines)
	checkTopicMatchesLog(t, st, logged)
	stopped, _ := find(lines, "stopped")
	if int(stopped.num("produced")) != len(logged) || stopped.num("pending") != 0 || stopped.num("failed") != 0 {
		t.Fatalf("stopped line %v, want %d produced, none pending or failed", stopped, len(logged))
	}
}
