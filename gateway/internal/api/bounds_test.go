package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/gateway"
	"github.com/commentflow/commentflow/gateway/internal/api"
)

// TestBoundsComeFromSpec: the bounds of limit and offset and the default
// page size live only in openapi.yaml: a server given a copy of the spec
// with other values accepts, rejects and defaults by that copy.
func TestBoundsComeFromSpec(t *testing.T) {
	t.Parallel()
	yaml := string(gateway.OpenAPIYAML)
	for _, r := range []struct{ old, new string }{
		{"minimum: 1\n        maximum: 100\n        default: 20", "minimum: 2\n        maximum: 150\n        default: 7"},
		{"minimum: 0\n        maximum: 10000\n        default: 0", "minimum: 0\n        maximum: 20000\n        default: 0"},
	} {
		if n := strings.Count(yaml, r.old); n != 1 {
			t.Fatalf("openapi.yaml has %q %d times, want once", r.old, n)
		}
		yaml = strings.Replace(yaml, r.old, r.new, 1)
	}
	modified, err := api.LoadSpecFrom(context.Background(), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	// Not wrapped in apitest.Validating: the copy's response schema still
	// caps a page at 100 items.
	h, err := api.NewServer(context.Background(), api.Options{
		Collection: client.Database("commentflow").Collection("comments"), Spec: modified, Cursors: testCodec,
	})
	if err != nil {
		t.Fatal(err)
	}

	page, res := getPage(t, h, "/api/v1/comments")
	if page.Limit != 7 || len(page.Items) != 7 {
		t.Errorf("default page: limit %d, %d items, want the copy's default 7", page.Limit, len(page.Items))
	}
	if link := res.Header.Get("Link"); !strings.Contains(link, "limit=7") {
		t.Errorf("Link %q does not keep the default limit 7", link)
	}
	if page, _ := getPage(t, h, "/api/v1/comments?limit=150"); page.Limit != 150 || len(page.Items) != 150 {
		t.Errorf("limit=150: limit %d, %d items, want 150 (the copy's maximum)", page.Limit, len(page.Items))
	}
	if page, _ := getPage(t, h, "/api/v1/comments?offset=15000"); page.Offset != 15000 || len(page.Items) != 0 {
		t.Errorf("offset=15000: offset %d, %d items, want 15000 and none", page.Offset, len(page.Items))
	}
	for _, target := range []string{"?limit=151", "?limit=1", "?offset=20001"} {
		res := get(t, h, "/api/v1/comments"+target)
		if res.Status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400 by the copy's bounds: %s", target, res.Status, res.Body)
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(target, "?"), "=")
		if p := res.problem(t); len(p.Errors) != 1 || p.Errors[0].Parameter != name {
			t.Errorf("GET %s: problem %+v, want one error naming %s", target, p, name)
		}
	}
}

// TestSpecWithoutDefaultRefused: the gateway refuses to start with a spec
// whose limit has no default, rather than invent one in Go.
func TestSpecWithoutDefaultRefused(t *testing.T) {
	t.Parallel()
	old := "maximum: 100\n        default: 20\n"
	yaml := string(gateway.OpenAPIYAML)
	if strings.Count(yaml, old) != 1 {
		t.Fatalf("openapi.yaml has %q not exactly once", old)
	}
	modified, err := api.LoadSpecFrom(context.Background(), []byte(strings.Replace(yaml, old, "maximum: 100\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.NewServer(context.Background(), api.Options{Collection: client.Database("x").Collection("y"), Spec: modified})
	if err == nil || !strings.Contains(err.Error(), `"limit"`) || !strings.Contains(err.Error(), "default") {
		t.Errorf("NewServer with a limit without default: %v, want an error naming limit's default", err)
	}
}
