package api_test

import (
	"net/http"
	"net/http/httptest"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/commentflow/commentflow/gateway/internal/apitest"
)

// TestSwaggerUIBrowser loads Swagger UI from a running gateway in headless
// Chromium, finds the three operations (the stream's too), runs "Try it out" → "Execute" on the
// list operation and sees the 200 the gateway answered.
func TestSwaggerUIBrowser(t *testing.T) {
	t.Parallel()
	ctx := apitest.Browser(t, 90*time.Second)

	var mu sync.Mutex
	var apiCalls []string
	h := newServer(t, serverOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			mu.Lock()
			apiCalls = append(apiCalls, r.URL.RequestURI())
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	const (
		list   = `#operations-comments-listComments`
		item   = `#operations-comments-getComment`
		live   = `#operations-comments-streamComments`
		status = list + ` .live-responses-table .response .response-col_status`
	)
	fail := func(step string, err error) {
		t.Helper()
		if ctx.Err() != nil {
			t.Fatalf("%s: Swagger UI did not get there in time: %v", step, err)
		}
		t.Fatalf("%s: %v", step, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/api/openapi"),
		chromedp.WaitVisible(chromedp.CSS(list)),
		chromedp.WaitVisible(chromedp.CSS(item)),
		chromedp.WaitVisible(chromedp.CSS(live)),
	); err != nil {
		fail("load Swagger UI and find the three operations", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("read "+sel, err)
		}
		return s
	}
	title, listPath, itemPath := text(`.info .title`), text(list+` .opblock-summary-path`), text(item+` .opblock-summary-path`)
	if livePath := text(live + ` .opblock-summary-path`); strings.TrimSpace(livePath) != "/api/v1/comments/stream" {
		t.Errorf("the stream operation shows path %q", livePath)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(list+` .opblock-summary`)),
		chromedp.WaitVisible(chromedp.CSS(list+` .try-out__btn`)),
		chromedp.Click(chromedp.CSS(list+` .try-out__btn`)),
		chromedp.WaitVisible(chromedp.CSS(list+` .execute`)),
		chromedp.Click(chromedp.CSS(list+` .execute`)),
		chromedp.WaitVisible(chromedp.CSS(status)),
	); err != nil {
		fail("Try it out, Execute", err)
	}
	got := text(status)
	if !strings.Contains(title, "commentflow gateway") {
		t.Errorf("page title %q", title)
	}
	if strings.TrimSpace(listPath) != "/api/v1/comments" || !strings.Contains(itemPath, "/api/v1/comments/") {
		t.Errorf("operations show paths %q and %q", listPath, itemPath)
	}
	if strings.TrimSpace(got) != "200" {
		t.Errorf("Try it out answered %q, want 200", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(apiCalls) != 1 || !strings.HasPrefix(apiCalls[0], "/api/v1/comments") {
		t.Errorf("the gateway saw API calls %v, want the one list request", apiCalls)
	}
}
