// Command snapshot takes the README's picture of the dashboard's queries,
// docs/prometheus-dashboard-queries.png, on a machine without Docker or
// Grafana: it runs the devstack system (three consumers), Debian's Prometheus
// scraping every service with the repository's alerting rules, steady API
// traffic, an open comment stream and a few poison records, then draws each
// dashboard panel's queries in Prometheus's own graph page over the same
// window and lays them out as the dashboard does, with headless Chromium.
//
//	go run ./devstack/observability/cmd/snapshot            # from the repository root
//	go run ./devstack/observability/cmd/snapshot -run 15m -rate 40 -out /tmp/shot.png
//
// It needs `prometheus` and `chromium` on PATH (Debian's packages).
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/observability"
	"github.com/commentflow/commentflow/devstack/procs"
	"github.com/commentflow/commentflow/devstack/syncbuf"
	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "snapshot:", err)
		os.Exit(1)
	}
}

type options struct {
	out, prometheus, chromium string
	runFor                    time.Duration
	rate                      float64
	consumers                 int
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "docs/prometheus-dashboard-queries.png", "PNG to write (a relative path is from the repository root)")
	fs.DurationVar(&o.runFor, "run", 10*time.Minute, "how long the system runs under traffic before the picture")
	fs.Float64Var(&o.rate, "rate", 20, "producer events per second")
	fs.IntVar(&o.consumers, "consumers", 3, "consumer replicas")
	fs.StringVar(&o.prometheus, "prometheus", "prometheus", "Prometheus binary")
	fs.StringVar(&o.chromium, "chromium", "chromium", "Chromium binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	root, err := procs.RepoRoot()
	if err != nil {
		return err
	}
	for _, bin := range []*string{&o.prometheus, &o.chromium} {
		if *bin, err = exec.LookPath(*bin); err != nil {
			return fmt.Errorf("%w (apt-get install -y prometheus chromium)", err)
		}
	}
	tmp, err := os.MkdirTemp("", "commentflow-snapshot-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	log.Info("starting the system", "consumers", o.consumers, "rate", o.rate)
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	sys, err := system.Start(startCtx, system.Config{
		DataDir: filepath.Join(tmp, "data"), Rate: o.rate, Consumers: o.consumers,
		LogLevel: "warn", Out: io.Discard, Log: log,
	})
	cancel()
	if err != nil {
		return err
	}
	defer sys.Stop()

	promURL, stopProm, err := startPrometheus(ctx, o.prometheus, root, tmp, sys, log)
	if err != nil {
		return err
	}
	defer stopProm()
	log.Info("prometheus is scraping every service", "url", promURL)

	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	go apiTraffic(trafficCtx, sys.GatewayURL())
	go stream(trafficCtx, sys.GatewayURL())
	go poison(trafficCtx, sys.Infra.KafkaAddr(), o.runFor, log)

	log.Info("running under traffic", "for", o.runFor)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.runFor):
	}
	end := time.Now()
	firing, err := alerts(ctx, promURL)
	if err != nil {
		return err
	}
	png, err := draw(ctx, o, tmp, promURL, end, firing, load())
	if err != nil {
		return err
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, filepath.FromSlash(out))
	}
	if err := os.WriteFile(out, png, 0o644); err != nil { //nolint:gosec // G306: a committed, world-readable file
		return err
	}
	log.Info("wrote the picture", "file", out, "alerts", firing)
	return nil
}

// startPrometheus runs Prometheus with the repository's alerting rules,
// scraping each service process (every 5s, for smoother graphs than the
// compose profile's 15s) under the compose profile's job names.
func startPrometheus(ctx context.Context, bin, root, tmp string, sys *system.System, log *slog.Logger) (string, func(), error) {
	target := func(u string) string { return `"` + strings.TrimPrefix(u, "http://") + `"` }
	var consumers []string
	for _, c := range sys.Consumers() {
		consumers = append(consumers, target(sys.OpsURL(c)))
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [%q]
scrape_configs:
  - {job_name: producer, static_configs: [{targets: [%s]}]}
  - {job_name: consumer, static_configs: [{targets: [%s]}]}
  - {job_name: gateway, static_configs: [{targets: [%s]}]}
`, filepath.Join(root, filepath.FromSlash(observability.AlertsFile)),
		target(sys.OpsURL(sys.Producer())), strings.Join(consumers, ", "), target(sys.GatewayURL()))
	if err := os.WriteFile(filepath.Join(tmp, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	port, err := infra.FreePort("127.0.0.1")
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var logs syncbuf.Buffer
	p, err := procs.Start(procs.Spec{Name: "prometheus", Bin: bin, Args: []string{
		"--config.file=" + filepath.Join(tmp, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(tmp, "prometheus"),
		"--web.listen-address=" + addr,
	}}, &logs, log)
	if err != nil {
		return "", nil, err
	}
	stop := func() { _ = p.Stop(10 * time.Second) }
	url := "http://" + addr
	if err := procs.WaitHTTP(ctx, url+"/-/ready", time.Minute); err != nil {
		stop()
		return "", nil, fmt.Errorf("prometheus: %w\n%s", err, logs.String())
	}
	return url, stop, nil
}

// apiTraffic reads the API as a client would: pages of the list, a comment,
// and now and then a bad request (400).
func apiTraffic(ctx context.Context, base string) {
	get := func(path string) []byte {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	for i := 0; ctx.Err() == nil; i++ {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		_ = json.Unmarshal(get("/api/v1/comments?limit=20"), &page)
		if len(page.Items) > 0 {
			get("/api/v1/comments/" + page.Items[i%len(page.Items)].ID)
		}
		if i%10 == 0 {
			get("/api/v1/comments?limit=0")
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// stream keeps one comment stream (SSE) open, reading every event.
func stream(ctx context.Context, base string) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/comments/stream", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// poison produces two records the consumers must dead-letter (one that is
// not framed, one framed with a schema ID the registry does not know) at a
// third and at two thirds of the run.
func poison(ctx context.Context, brokers string, runFor time.Duration, log *slog.Logger) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		log.Error("poison client", "err", err)
		return
	}
	defer cl.Close()
	unknown := schemas.Frame(999999, []byte("an unknown schema"))
	for range 2 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(runFor / 3):
		}
		err := cl.ProduceSync(ctx,
			&kgo.Record{Topic: schemas.Topic, Key: []byte("poison"), Value: []byte("not avro at all")},
			&kgo.Record{Topic: schemas.Topic, Key: []byte("poison"), Value: unknown},
		).FirstErr()
		log.Info("produced two poison records", "err", err)
	}
}

// alerts are the names of the alerts firing in Prometheus.
func alerts(ctx context.Context, promURL string) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, promURL+"/api/v1/alerts", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range body.Data.Alerts {
		name := a.Labels["alertname"]
		if c := a.Labels["class"]; c != "" {
			name += " " + c
		}
		out = append(out, name+" ("+a.State+")")
	}
	return out, nil
}

// load is the machine's load average, for the caption.
func load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// graphDrawn is true once Prometheus's graph page has drawn its series (the
// legend is filled in last) or said why it has none.
const graphDrawn = `!!document.querySelector('#graph0 .legend .label') ||
	[...document.querySelectorAll('.alert-danger, .alert-warning')].some(e => e.offsetParent !== null && e.textContent.trim() !== '')`

// drawn waits until the graph page is drawn, for at most a minute.
func drawn(ctx context.Context) error {
	for deadline := time.Now().Add(time.Minute); ; {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](graphDrawn))
		if err != nil {
			return err
		}
		if ok {
			return chromedp.Do(ctx, chromedp.Sleep(time.Second)) // let the last paint finish
		}
		if time.Now().After(deadline) {
			return errors.New("the graph page drew nothing in a minute")
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(250*time.Millisecond)); err != nil {
			return err
		}
	}
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><style>
body { font-family: sans-serif; margin: 12px; background: #f4f5f5; width: 1816px; }
h1 { font-size: 20px; margin: 0 0 4px; }
p { margin: 0 0 10px; color: #444; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); gap: 10px; }
figure { margin: 0; background: #fff; border: 1px solid #ccc; padding: 6px; }
figcaption { font-weight: bold; font-size: 15px; margin-bottom: 4px; }
figure code { display: block; font-size: 11px; color: #555; margin-bottom: 4px; word-break: break-all; }
img { max-width: 100%; }
</style></head><body>
<h1>commentflow: the dashboard's queries in Prometheus</h1>
<p>go run ./devstack system with {{.Consumers}} consumers at {{.Rate}} events/s, API traffic, one open comment stream and two poison records at a third and at two thirds of the run.
Window: {{.Window}} ending {{.End}} UTC. Alerts then: {{if .Firing}}{{range $i, $a := .Firing}}{{if $i}}, {{end}}{{$a}}{{end}}{{else}}none{{end}}. Load average: {{.Load}}.</p>
<div class="grid">{{range .Panels}}
<figure style="grid-column: span {{.Width}}"><figcaption>{{.Title}}</figcaption><img src="data:image/png;base64,{{.PNG}}"></figure>{{end}}
</div></body></html>`))

type shot struct {
	Title string
	Width uint32
	PNG   string
}

// draw screenshots Prometheus's graph of each panel's queries, then the
// dashboard-like page that lays them out.
func draw(ctx context.Context, o options, tmp, promURL string, end time.Time, firing []string, loadavg string) ([]byte, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(o.chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1100, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	bctx, cancelT := context.WithTimeout(bctx, 5*time.Minute)
	defer cancelT()

	var shots []shot
	for _, p := range observability.Panels {
		url := observability.GraphURL(promURL, observability.GraphExpr(p), o.runFor, end)
		err := chromedp.Do(bctx, chromedp.Navigate(url))
		if err == nil {
			err = drawn(bctx)
		}
		var png []byte
		if err == nil {
			png, err = chromedp.Run(bctx, chromedp.Screenshot(chromedp.CSS(`#graph0`)))
		}
		if err != nil {
			return nil, fmt.Errorf("graph of panel %q: %w", p.Title, err)
		}
		shots = append(shots, shot{Title: p.Title, Width: p.Width, PNG: base64.StdEncoding.EncodeToString(png)})
	}
	var html bytes.Buffer
	err := page.Execute(&html, map[string]any{
		"Consumers": o.consumers, "Rate": o.rate, "Window": o.runFor.Round(time.Minute).String(), "End": end.UTC().Format("2006-01-02 15:04"),
		"Firing": firing, "Load": loadavg, "Panels": shots,
	})
	if err != nil {
		return nil, err
	}
	file := filepath.Join(tmp, "page.html")
	if err := os.WriteFile(file, html.Bytes(), 0o600); err != nil {
		return nil, err
	}
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1840, 1000), chromedp.Navigate("file://"+file)); err != nil {
		return nil, err
	}
	return chromedp.Run(bctx, chromedp.FullScreenshot(100))
}
