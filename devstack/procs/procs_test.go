package procs

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Stop lands while the supervisor relaunches a crashed service, many times
// over, at slightly different moments: it must always end the relaunched
// process and return, never wait for a process it did not signal.
func TestStopDuringRestart(t *testing.T) {
	restartDelay = time.Millisecond
	t.Cleanup(func() { restartDelay = time.Second })
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	const rounds = 150
	for i := range rounds {
		// The first run crashes at once; the relaunch runs until stopped.
		marker := filepath.Join(dir, "m"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		p, err := Start(Spec{
			Name:    "crashy",
			Bin:     "/bin/sh",
			Args:    []string{"-c", `if [ -e "$1" ]; then exec sleep 600; fi; : > "$1"; exit 1`, "sh", marker},
			Restart: true,
		}, io.Discard, log)
		if err != nil {
			t.Fatal(err)
		}
		<-p.Exited() // the crash; the supervisor relaunches now
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		stopped := make(chan error, 1)
		go func() { stopped <- p.Stop(10 * time.Second) }()
		select {
		case err := <-stopped:
			_ = err // an error is expected: the relaunched process dies of SIGTERM
		case <-time.After(60 * time.Second):
			_ = p.Signal(syscall.SIGKILL) // don't leave the relaunched process behind
			t.Fatalf("round %d: Stop during a restart did not return within 60s", i)
		}
		if pid := p.Pid(); syscall.Kill(pid, 0) == nil {
			t.Fatalf("round %d: process %d still runs after Stop", i, pid)
		}
	}
}
