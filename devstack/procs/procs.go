// Package procs builds the service binaries from the workspace and runs them
// as real processes, the way compose runs containers: same binaries, same
// environment variables, logs prefixed with the service's name, a crashed
// service restarted (restart: unless-stopped), SIGTERM to stop.
//
// devstack never imports a service package: it only knows their module
// folders and command paths.
package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/commentflow/commentflow/devstack/syncbuf"
)

// Services are the commands devstack builds: module folder = binary name,
// command at <name>/cmd/<name>.
var Services = []string{"producer", "consumer", "gateway"}

// RepoRoot finds the workspace root (the folder holding go.work) from the
// working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work found above the working directory: run from the commentflow repository")
		}
		dir = parent
	}
}

// Build compiles the named services (default: all) from the workspace at
// root into outDir and returns each binary's path by name. Extra go build
// flags (such as -race) may be given.
func Build(ctx context.Context, root, outDir string, names []string, flags ...string) (map[string]string, error) {
	if len(names) == 0 {
		names = Services
	}
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	bins := map[string]string{}
	args := append([]string{"build", "-o", outDir + string(filepath.Separator)}, flags...)
	for _, n := range names {
		args = append(args, "./"+n+"/cmd/"+n)
		bins[n] = filepath.Join(outDir, n)
	}
	cmd := exec.CommandContext(ctx, "go", args...) //nolint:gosec // G204: go build of the workspace's own service packages
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return bins, nil
}

// Spec says how to run one service process.
type Spec struct {
	Name string   // shown as the log prefix, e.g. "consumer-2"
	Bin  string   // the binary
	Args []string // its arguments
	Env  []string // KEY=value pairs added to the current environment
	// Restart restarts the process when it exits on its own.
	Restart bool
	// Tee, if set, also receives every raw output line (with "\n").
	Tee io.Writer
}

// Proc is a supervised service process.
type Proc struct {
	spec Spec
	out  io.Writer // the shared, prefixed console
	log  *slog.Logger

	// mu guards the fields below. Launching a process happens under mu,
	// with the stopping check: Stop and a relaunch are exclusive, so Stop
	// always signals the process that runs (or none is started after it).
	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	stopped  chan struct{} // closed by Stop: cuts a restart delay short
	exited   chan struct{} // closed when the current process exited
	done     chan struct{} // closed when supervision ended
	restarts int
}

// Start starts the process and supervises it until Stop (or, without
// Restart, until it exits). Its prefixed lines go to out, which the
// processes share: make it with Console, so their lines never interleave.
func Start(spec Spec, out io.Writer, log *slog.Logger) (*Proc, error) {
	p := &Proc{spec: spec, out: out, log: log, done: make(chan struct{}), stopped: make(chan struct{})}
	p.mu.Lock()
	err := p.launchLocked()
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	go p.supervise()
	return p, nil
}

// Console wraps w so that several processes can write whole lines to it.
func Console(w io.Writer) io.Writer { return &syncbuf.Buffer{To: w} }

// restartDelay is the first delay before a restart; it doubles up to 30s.
var restartDelay = time.Second

// launchLocked starts the process; p.mu is held.
func (p *Proc) launchLocked() error {
	// Not CommandContext: Stop ends the process gracefully (SIGTERM, then
	// SIGKILL after a grace period), not a context.
	cmd := exec.Command(p.spec.Bin, p.spec.Args...) //nolint:gosec,noctx // G204: a binary that Build just compiled; noctx: see above
	cmd.Env = append(os.Environ(), p.spec.Env...)
	// Its own process group: a Ctrl-C in the terminal reaches devstack,
	// which stops the services in order, not all of them at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.copyLines(&wg, stdout)
	go p.copyLines(&wg, stderr)
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		wg.Wait() // read all output before Wait closes the pipes
		err := cmd.Wait()
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if !stopping && (err != nil || p.restartOn()) {
			p.log.Warn("service exited", "service", p.spec.Name, "pid", cmd.Process.Pid, "err", errString(err))
		}
		close(exited)
	}()
	return nil
}

func (p *Proc) restartOn() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spec.Restart
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (p *Proc) copyLines(wg *sync.WaitGroup, r io.Reader) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	prefix := fmt.Sprintf("%-11s| ", p.spec.Name)
	for sc.Scan() {
		line := sc.Text()
		_, _ = io.WriteString(p.out, prefix+line+"\n")
		if p.spec.Tee != nil {
			_, _ = io.WriteString(p.spec.Tee, line+"\n")
		}
	}
}

func (p *Proc) supervise() {
	defer close(p.done)
	delay := restartDelay
	for {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		<-exited
		p.mu.Lock()
		stop := p.stopping || !p.spec.Restart
		p.mu.Unlock()
		if stop {
			return
		}
		p.log.Info("restarting service", "service", p.spec.Name, "in", delay.String())
		select {
		case <-time.After(delay):
		case <-p.stopped:
			return
		}
		delay = min(delay*2, 30*time.Second)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		p.restarts++
		err := p.launchLocked()
		p.mu.Unlock()
		if err != nil {
			p.log.Error("restart failed", "service", p.spec.Name, "err", err)
			return
		}
	}
}

// Name is the process's name.
func (p *Proc) Name() string { return p.spec.Name }

// Pid is the current process's id.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Restarts counts automatic restarts.
func (p *Proc) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Signal sends sig to the current process (SIGKILL to simulate a crash:
// with Restart it comes back).
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Signal(sig)
}

// Exited is closed when the current process has exited.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// ExitCode is the current process's exit code, -1 while it runs or when it
// was killed by a signal.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM, waits up to timeout for a graceful exit, then kills.
// It ends supervision and returns the exit error, if any.
func (p *Proc) Stop(timeout time.Duration) error {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.stopped)
	}
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		<-p.done
		return fmt.Errorf("%s did not stop within %s: killed", p.spec.Name, timeout)
	}
	<-p.done
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with %s", p.spec.Name, cmd.ProcessState)
	}
	return nil
}

// WaitHTTP waits until url answers 200, for at most within.
func WaitHTTP(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s did not answer within %s", url, within), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
