package app_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// binary builds cmd/consumer once per test run, the way the Dockerfile
// does (version stamped with -ldflags).
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the consumer binary; skipped with -short")
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "consumer-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "consumer")
		args := []string{"build", "-o", build.bin, "-ldflags", "-X main.version=v0.0.0-test"}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(context.Background(), "go", append(args, "github.com/commentflow/commentflow/consumer/cmd/consumer")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// process is the consumer binary running.
type process struct {
	cmd  *exec.Cmd
	logs *logs
	addr string
	done chan error
}

func startProcess(t *testing.T, bin, name string, env map[string]string) *process {
	t.Helper()
	p := &process{logs: newLogs(t, name), done: make(chan error, 1)}
	p.cmd = exec.CommandContext(context.Background(), bin)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if err := <-p.done; err != nil {
			t.Logf("%s: %v", name, err) // killed, or exited with an error already reported
		}
	})
	select {
	case <-p.logs.consuming:
		p.addr = <-p.logs.addr
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited at startup: %v", name, err)
	case <-time.After(testTimeout):
		t.Fatalf("%s did not start", name)
	}
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(testTimeout):
		t.Fatal("the consumer did not exit")
		return -1
	}
}

func (p *process) instance() *instance { return &instance{name: "process", addr: p.addr, logs: p.logs} }

func run(t *testing.T, bin string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// The binary: --help, a bad variable, the healthcheck subcommand, the
// stamped version, and on SIGTERM it stores and commits the batch in hand,
// leaves the group and exits 0.
func TestBinary(t *testing.T) {
	bin := binary(t)
	if code, out, _ := run(t, bin, nil, "--help"); code != 0 || !strings.Contains(out, "MONGODB_WRITE_CONCERN") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, bin, map[string]string{"CONSUMER_BATCH_TIMEOUT": "soon"}); code != 2 || !strings.Contains(errOut, "CONSUMER_BATCH_TIMEOUT") {
		t.Errorf("bad variable: exit %d, stderr %q", code, errOut)
	}

	s := newStack(t)
	ev := s.events()
	ev.produce(300)
	p := startProcess(t, bin, "process", s.env("CONSUMER_BATCH_SIZE", "1000", "CONSUMER_BATCH_TIMEOUT", "1h"))
	if !strings.Contains(p.logs.String(), `"version":"v0.0.0-test"`) {
		t.Errorf("the stamped version is not logged")
	}
	in := p.instance()
	eventually(t, "all records polled", func() (bool, string) {
		n := in.metric(t, "commentflow_consumer_records_consumed_total")
		return n == 300, fmt.Sprint(n)
	})
	if code, out, errOut := run(t, bin, map[string]string{"HTTP_ADDR": p.addr}, "healthcheck"); code != 0 {
		t.Errorf("healthcheck while running: exit %d %s %s", code, out, errOut)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	s.checkExactlyOnce(ev.expected())
	s.waitCommittedAtEnd()
	if code, _, _ := run(t, bin, map[string]string{"HTTP_ADDR": p.addr}, "healthcheck"); code != 1 {
		t.Errorf("healthcheck after exit: exit %d, want 1", code)
	}
}

// An instance killed (SIGKILL) after storing records it could not commit:
// once its session expires the rest of the group takes over from the last
// commit, the redelivered records are skipped as duplicates, and every
// event is stored exactly once.
func TestCrashAndReplay(t *testing.T) {
	t.Parallel() // mostly waits for the victim's session to expire
	bin := binary(t)
	s := newStack(t)
	ev := s.events()
	// Every commit of the victim fails: it stores batch after batch and
	// commits none, the state of a process killed between a store and
	// its commit, widened to many batches.
	fault := s.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: s.group, Count: -1})
	victim := startProcess(t, bin, "victim", s.env("KAFKA_SESSION_TIMEOUT", "6s"))
	wait := ev.stream(900, 300)
	s.waitCount(150)
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.wait(t)
	fault.Remove()
	if fault.Hits() == 0 {
		t.Fatal("the victim never tried to commit")
	}
	if got := s.committed(); len(got) != 0 {
		t.Fatalf("the victim committed %v", got)
	}
	storedByVictim := s.count()

	b := s.start("b", s.env())
	c := s.start("c", s.env())
	wait()
	s.waitAllStored(ev)
	sent := int64(len(ev.expected()))
	var stored, dups int64
	for _, in := range []*instance{b, c} {
		if err := in.stop(); err != nil {
			t.Errorf("%s: %v", in.name, err)
		}
		sum := in.summary(t)
		stored += sum.Stored
		dups += sum.Duplicates
	}
	// Nothing was committed, so the survivors saw every record once: the
	// victim's as duplicates.
	if stored+dups != sent || dups < storedByVictim {
		t.Errorf("survivors stored %d and skipped %d duplicates; want %d in all, at least %d duplicates",
			stored, dups, sent, storedByVictim)
	}
}
