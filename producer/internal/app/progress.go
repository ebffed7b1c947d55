package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/commentflow/commentflow/producer/internal/produce"
)

// How often the throughput log line and the plain progress lines come.
// Variables so that tests can shorten them.
var (
	throughputEvery = 10 * time.Second
	plainEvery      = 5 * time.Second
	barEvery        = 100 * time.Millisecond
)

// progressMode resolves PROGRESS: a bar needs a total (PRODUCER_COUNT > 0);
// auto shows it only on a terminal, plain lines elsewhere, and nothing for
// an endless run (whose throughput log line says enough).
func progressMode(mode string, count int64, stderr io.Writer) string {
	switch mode {
	case ProgressAuto:
		switch {
		case count == 0:
			return ProgressOff
		case isTerminal(stderr):
			return ProgressBar
		default:
			return ProgressPlain
		}
	case ProgressBar:
		if count == 0 {
			return ProgressPlain
		}
	}
	return mode
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// reporter logs the throughput periodically and shows progress on stderr.
type reporter struct {
	p       *produce.Producer
	log     *slog.Logger
	w       io.Writer
	mode    string
	count   int64
	start   time.Time
	bar     *progressbar.ProgressBar
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startReporter(p *produce.Producer, cfg *Config, log *slog.Logger, stderr io.Writer) *reporter {
	r := &reporter{
		p: p, log: log, w: stderr, count: cfg.Count, start: time.Now(),
		mode:    progressMode(cfg.Progress, cfg.Count, stderr),
		stopped: make(chan struct{}), done: make(chan struct{}),
	}
	if r.mode == ProgressBar {
		r.bar = progressbar.NewOptions64(cfg.Count,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("producing"),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(barEvery),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	go r.loop()
	return r
}

func (r *reporter) loop() {
	defer close(r.done)
	tput := time.NewTicker(throughputEvery)
	defer tput.Stop()
	every := plainEvery
	if r.mode == ProgressBar {
		every = barEvery
	}
	prog := time.NewTicker(every)
	defer prog.Stop()
	last, lastAt := int64(0), r.start
	for {
		select {
		case <-r.stopped:
			r.progress(true)
			return
		case now := <-tput.C:
			st := r.p.Stats()
			r.log.Info("throughput",
				"events_per_second", perSecond(st.Produced-last, now.Sub(lastAt)),
				"produced", st.Produced, "failed", st.Failed, "pending", st.Pending())
			last, lastAt = st.Produced, now
		case <-prog.C:
			r.progress(false)
		}
	}
}

// progress shows where the run is; final is the last call.
func (r *reporter) progress(final bool) {
	st := r.p.Stats()
	switch r.mode {
	case ProgressBar:
		_ = r.bar.Set64(st.Produced)
		if final {
			_ = r.bar.Exit() // a bar short of 100% (stopped early) stays as it is
			fmt.Fprintln(r.w)
		}
	case ProgressPlain:
		rate := perSecond(st.Produced, time.Since(r.start))
		if r.count > 0 {
			fmt.Fprintf(r.w, "progress: %d/%d events (%.1f%%), %g events/s, %d failed\n",
				st.Produced, r.count, 100*float64(st.Produced)/float64(r.count), rate, st.Failed)
		} else {
			fmt.Fprintf(r.w, "progress: %d events, %g events/s, %d failed\n", st.Produced, rate, st.Failed)
		}
	}
}

// stop shows the final progress and waits for the loop to end.
func (r *reporter) stop() {
	r.once.Do(func() { close(r.stopped) })
	<-r.done
}
