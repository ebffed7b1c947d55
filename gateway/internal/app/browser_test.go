package app

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/schemas"
)

// dropper ends the stream requests in flight on demand, as a server
// restart or a proxy timeout would, and records each one's Last-Event-ID.
type dropper struct {
	mu      sync.Mutex
	cancels []context.CancelFunc
	lastIDs []string
	gate    chan struct{} // while not nil, new streams wait for it to close
}

func (d *dropper) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != streamPath || r.URL.Query().Get("post_id") == "" { // the browser's streams only
			h.ServeHTTP(w, r)
			return
		}
		d.mu.Lock()
		gate := d.gate
		d.mu.Unlock()
		if gate != nil {
			<-gate
		}
		ctx, cancel := context.WithCancel(r.Context())
		d.mu.Lock()
		d.cancels = append(d.cancels, cancel)
		d.lastIDs = append(d.lastIDs, r.Header.Get("Last-Event-ID"))
		d.mu.Unlock()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// drop ends the streams and holds the reconnections until the returned
// function is called.
func (d *dropper) drop() (release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gate := make(chan struct{})
	d.gate = gate
	release = func() {
		d.mu.Lock()
		d.gate = nil
		d.mu.Unlock()
		close(gate)
	}
	for _, c := range d.cancels {
		c()
	}
	d.cancels = nil
	return release
}

func (d *dropper) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.lastIDs)
}

// TestStreamInTheBrowser: a browser's EventSource receives the comments of
// its post, and when the server drops the stream it reconnects by itself
// with Last-Event-ID and continues with the next comment: none lost, none
// twice.
func TestStreamInTheBrowser(t *testing.T) {
	ctx := apitest.Browser(t, 2*time.Minute)
	d := &dropper{}
	g := start(t, map[string]string{
		"KAFKA_BROKERS": kafkaAddr, "SCHEMA_REGISTRY_URL": registryURL, "GATEWAY_STREAM_RETRY": "100ms",
	}, d.wrap)
	pub := apitest.NewPublisher(t, kafkaAddr, registryURL)
	post := apitest.Posts[3]
	_ = openEventually(t, g.url(streamPath)).Close() // the gateway reads the topic

	js := `window.got = []; window.opens = 0;
		const es = new EventSource('` + streamPath + `?post_id=` + post + `');
		es.onopen = () => { window.opens++; };
		es.addEventListener('comment', (e) => { window.got.push(JSON.parse(e.data).id); });
		true`
	if err := chromedp.Do(ctx, chromedp.Navigate(g.url("/healthz"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatal(err)
	}
	var got []string
	var opens int
	wait := func(what string, cond func() bool) {
		t.Helper()
		for {
			var err error
			if got, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.got`)); err == nil {
				opens, err = chromedp.Run(ctx, chromedp.Evaluate[int](`window.opens`))
			}
			if err != nil {
				t.Fatalf("waiting for %s: %v (got %d comments, %d opens)", what, err, len(got), opens)
			}
			if cond() {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("the stream to open", func() bool { return opens == 1 })

	batch := func(i int) []schemas.Comment {
		var cs []schemas.Comment
		for j := range 4 {
			cs = append(cs, apitest.Comment(post, "Ada", i+j), apitest.Comment(apitest.Posts[0], "Alan", i+j))
		}
		return cs
	}
	var want []string
	publish := func(cs []schemas.Comment) {
		pub.Publish(t, cs...)
		for _, c := range cs {
			if c.PostID == post {
				want = append(want, c.ID)
			}
		}
	}
	publish(batch(0))
	wait("the first comments", func() bool { return len(got) >= 4 })
	release := d.drop()
	publish(batch(10)) // while it is disconnected
	release()
	wait("the reconnect", func() bool { return opens >= 2 })
	publish(batch(20))
	wait("every comment", func() bool { return len(got) >= len(want) })
	time.Sleep(200 * time.Millisecond) // a repeat would arrive now
	wait("", func() bool { return true })
	if !slices.Equal(got, want) {
		t.Errorf("the browser got %v\nwant %v", got, want)
	}
	ids := d.requests()
	if len(ids) < 2 || ids[0] != "" || ids[1] == "" || strings.ContainsAny(ids[1], " \n") {
		t.Errorf("Last-Event-ID of the stream requests: %q, want none, then the last id", ids)
	}
}

// TestReadmeEventSourceSnippet runs the README's browser snippet as
// written (its URL pointed at the test gateway): it shows the post's
// comments, and shows them as text, never as HTML: a comment is anyone's
// input, and markup in it must not run in the reader's page.
func TestReadmeEventSourceSnippet(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```html\n<script>\n(.*?)</script>\n```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README: no ```html <script> block")
	}
	ctx := apitest.Browser(t, 2*time.Minute)
	g := start(t, map[string]string{"KAFKA_BROKERS": kafkaAddr, "SCHEMA_REGISTRY_URL": registryURL}, nil)
	pub := apitest.NewPublisher(t, kafkaAddr, registryURL)
	post := apitest.Posts[2]
	_ = openEventually(t, g.url(streamPath)).Close() // the gateway reads the topic

	js := strings.NewReplacer("http://localhost:8000", g.url(""), "<uuid>", post).Replace(string(block[1]))
	if !strings.Contains(js, g.url(streamPath)+"?post_id="+post) {
		t.Fatalf("the README snippet does not open %s?post_id=<uuid>:\n%s", streamPath, block[1])
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(g.url("/healthz"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](js+"\n;window.pwned = false; true")); err != nil {
		t.Fatal(err)
	}
	// A stream starts at the end, and the page's may not be open yet:
	// publish the comment again until the page shows it.
	const markup = `<img src=x onerror="window.pwned=true">see my profile`
	deadline := time.Now().Add(time.Minute)
	for i := 1; ; i++ {
		c := apitest.Comment(post, "Mallory", i)
		c.Text = markup
		pub.Publish(t, c)
		text := ""
		for wait := time.Now().Add(time.Second); time.Now().Before(wait) && !strings.Contains(text, "see my profile"); time.Sleep(50 * time.Millisecond) {
			if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
				t.Fatalf("waiting for the comment on the page: %v", err)
			}
		}
		if strings.Contains(text, "see my profile") {
			if !strings.Contains(text, "Mallory: "+markup) {
				t.Errorf("the page shows %q: the comment's markup was rendered, want its text %q", text, markup)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute of publishing, the page shows no comment: %q", text)
		}
	}
	time.Sleep(200 * time.Millisecond) // an onerror handler would have run by now
	if pwned, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned`)); err != nil || pwned {
		t.Errorf("window.pwned = %v (%v): the comment's markup ran in the page", pwned, err)
	}
}
