package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway"
	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/platform/ops"
)

// TestRoutesMatchSpec: the router serves exactly the operations the spec
// documents (plus the docs routes), so neither can drift.
func TestRoutesMatchSpec(t *testing.T) {
	t.Parallel()
	h, err := api.NewServer(context.Background(), api.Options{Collection: client.Database("x").Collection("y"), Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	if err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	docs := []string{"GET /", "GET /api/openapi", "GET /api/openapi/", "GET /api/openapi/{file}", "GET /api/openapi.json", "GET /api/openapi.yaml"}
	want := append(spec.Operations(), docs...)
	sort.Strings(routes)
	sort.Strings(want)
	if !slices.Equal(routes, want) {
		t.Errorf("routes\n got %v\nwant %v", routes, want)
	}
}

// TestSpecVersionAndServers: the spec is OpenAPI 3.0.3 and Swagger UI's
// "Try it out" calls the serving host. (The bounds of limit and offset are
// the spec's alone: TestBoundsComeFromSpec.)
func TestSpecVersionAndServers(t *testing.T) {
	t.Parallel()
	if spec.Doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %s", spec.Doc.OpenAPI)
	}
	if len(spec.Doc.Servers) != 1 || spec.Doc.Servers[0].URL != "/" {
		t.Errorf("servers %v: Try it out must call the serving host", spec.Doc.Servers)
	}
}

// TestSpecServed: the spec is served as JSON and YAML, identical to the
// embedded file.
func TestSpecServed(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	js := get(t, h, "/api/openapi.json")
	if js.Status != http.StatusOK || js.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %s", js.Status, js.Header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(js.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Errorf("served openapi.json is invalid: %v", err)
	}
	if doc.Paths.Len() != spec.Doc.Paths.Len() || doc.Info.Title != spec.Doc.Info.Title {
		t.Errorf("served openapi.json differs from openapi.yaml")
	}
	yml := get(t, h, "/api/openapi.yaml")
	if yml.Status != http.StatusOK || !bytes.Equal(yml.Body, gateway.OpenAPIYAML) || yml.Header.Get("Content-Type") != "application/yaml" {
		t.Errorf("openapi.yaml: %d %s", yml.Status, yml.Header.Get("Content-Type"))
	}
}

// TestSwaggerUIServedFromBinary: the UI page and its assets come from the
// binary; the page loads nothing from another host.
func TestSwaggerUIServedFromBinary(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	for _, target := range []string{"/api/openapi", "/api/openapi/"} {
		page := get(t, h, target)
		if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", target, page.Status, page.Header.Get("Content-Type"))
		}
		html := string(page.Body)
		if !strings.Contains(html, "/api/openapi.json") {
			t.Errorf("%s does not point Swagger UI at /api/openapi.json", target)
		}
		for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1) {
			if !strings.HasPrefix(m[1], "/api/openapi/") {
				t.Errorf("%s loads %s from elsewhere", target, m[1])
			}
		}
		if strings.Contains(html, "//cdn") || strings.Contains(html, "unpkg.com") || strings.Contains(html, "jsdelivr") {
			t.Errorf("%s refers to a CDN", target)
		}
	}
	for _, asset := range []string{"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"} {
		plain := get(t, h, "/api/openapi/"+asset)
		gz := get(t, h, "/api/openapi/"+asset, "Accept-Encoding", "gzip")
		if plain.Status != http.StatusOK || gz.Status != http.StatusOK || len(plain.Body) < 100 {
			t.Errorf("%s: %d (%d bytes), gzip %d", asset, plain.Status, len(plain.Body), gz.Status)
		}
		if strings.HasSuffix(asset, ".js") && !strings.Contains(plain.Header.Get("Content-Type"), "javascript") {
			t.Errorf("%s: Content-Type %q", asset, plain.Header.Get("Content-Type"))
		}
	}
	if res := get(t, h, "/"); res.Status != http.StatusFound || res.Header.Get("Location") != "/api/openapi" {
		t.Errorf("/: %d to %q", res.Status, res.Header.Get("Location"))
	}
}

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ready := ops.NewReadiness()
	raw, err := api.NewServer(context.Background(), api.Options{
		Collection: client.Database("commentflow").Collection("comments"), Spec: spec, Registry: reg, Readiness: ready,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.Validating(t, spec, raw)
	if res := get(t, h, "/healthz"); res.Status != http.StatusOK {
		t.Errorf("/healthz: %d %s", res.Status, res.Body)
	}
	res := get(t, h, "/readyz")
	var rz struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	res.json(t, &rz)
	if res.Status != http.StatusOK || rz.Status != "ready" || rz.Checks["mongodb"] != "ok" {
		t.Errorf("/readyz: %d %s", res.Status, res.Body)
	}
	get(t, h, "/api/v1/comments?limit=3")
	get(t, h, "/api/v1/comments?limit=0")
	get(t, h, "/api/v1/comments/"+seeded[1].ID)
	get(t, h, "/no/such/path")
	metrics := string(get(t, h, "/metrics").Body)
	for _, want := range []string{
		`commentflow_gateway_http_requests_total{method="GET",route="/api/v1/comments",status="200"} 1`,
		`commentflow_gateway_http_requests_total{method="GET",route="/api/v1/comments",status="400"} 1`,
		`commentflow_gateway_http_requests_total{method="GET",route="/api/v1/comments/{id}",status="200"} 1`,
		`commentflow_gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`commentflow_gateway_http_request_duration_seconds_bucket{method="GET",route="/api/v1/comments",le="+Inf"} 2`,
		`commentflow_gateway_db_query_duration_seconds_count{op="find",outcome="ok"} 1`,
		`commentflow_gateway_db_query_duration_seconds_count{op="get",outcome="ok"} 1`,
		`commentflow_gateway_http_requests_in_flight 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(metrics)
	}
}

// TestDatabaseDown: with MongoDB unreachable, /readyz is 503 and API
// requests are 503 problems with Retry-After, within the DB timeout.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + addr).SetServerSelectionTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	raw, err := api.NewServer(context.Background(), api.Options{
		Collection: c.Database("commentflow").Collection("comments"), Spec: spec, DBTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.Validating(t, spec, raw)
	if res := get(t, h, "/readyz"); res.Status != http.StatusServiceUnavailable || !strings.Contains(string(res.Body), "mongodb") {
		t.Errorf("/readyz: %d %s", res.Status, res.Body)
	}
	if res := get(t, h, "/healthz"); res.Status != http.StatusOK {
		t.Errorf("/healthz: %d", res.Status)
	}
	for _, target := range []string{"/api/v1/comments", "/api/v1/comments?include_total=true", "/api/v1/comments/" + seeded[0].ID} {
		res := get(t, h, target)
		if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %d, Retry-After %q: %s", target, res.Status, res.Header.Get("Retry-After"), res.Body)
			continue
		}
		if p := res.problem(t); p.Type != api.TypeUnavailable {
			t.Errorf("%s: problem %+v", target, p)
		}
	}
	// Bad input is still a 400, not a 503: it never needs the database.
	if res := get(t, h, "/api/v1/comments?limit=0"); res.Status != http.StatusBadRequest {
		t.Errorf("bad input with the database down: %d", res.Status)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	off := newServer(t, serverOpts{})
	res := get(t, off, "/api/v1/comments?limit=1", "Origin", "https://example.com")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off by default, but Access-Control-Allow-Origin: %q", res.Header.Get("Access-Control-Allow-Origin"))
	}
	if pre := do(t, off, http.MethodOptions, "/api/v1/comments", "Origin", "https://example.com", "Access-Control-Request-Method", "GET"); pre.Status != http.StatusMethodNotAllowed {
		t.Errorf("preflight with CORS off: %d", pre.Status)
	}

	on := newServer(t, serverOpts{cors: []string{"https://example.com"}})
	res = get(t, on, "/api/v1/comments?limit=1", "Origin", "https://example.com")
	if res.Header.Get("Access-Control-Allow-Origin") != "https://example.com" || !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "Link") {
		t.Errorf("allowed origin: %v", res.Header)
	}
	if res := get(t, on, "/api/v1/comments?limit=1", "Origin", "https://evil.example"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin allowed: %v", res.Header)
	}
	pre := do(t, on, http.MethodOptions, "/api/v1/comments", "Origin", "https://example.com", "Access-Control-Request-Method", "GET")
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("preflight: %d %v", pre.Status, pre.Header)
	}

	anyOrigin := newServer(t, serverOpts{cors: []string{"*"}})
	if res := get(t, anyOrigin, "/api/v1/comments?limit=1", "Origin", "https://anything.example"); res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("* origin: %v", res.Header)
	}
}

// TestProblemJSON: problems are application/problem+json with every RFC
// 9457 member.
func TestProblemJSON(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	res := get(t, h, "/api/v1/comments?limit=500&x=1")
	if res.Header.Get("Content-Type") != api.ProblemContentType {
		t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "title", "status", "detail", "instance", "errors"} {
		if _, ok := m[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, res.Body)
		}
	}
	p := res.problem(t)
	if p.Status != 400 || p.Instance != "/api/v1/comments" || !strings.Contains(p.Detail, "limit") || !strings.Contains(p.Detail, "x") {
		t.Errorf("problem %+v", p)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
	}
}
