package apitest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the system Chromium (Debian's `chromium` package).
func chromiumPath() string {
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser starts headless Chromium for a test and returns its chromedp
// context, bounded by timeout. It skips the test, saying why, when no
// Chromium is installed or in -short mode.
func Browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("skipping the browser test: no Chromium found (install Debian's chromium package, as .ci/run does)")
	}
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // includes --headless, --no-first-run, --disable-background-networking, --disable-sync
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelCtx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx
}
