package api

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/gateway"
)

// The contract passes the recommended rules of the standard OpenAPI
// linters (Redocly's "recommended", Spectral's "oas") that are errors
// there, checked here so that CI needs no linter download:
// security is declared (explicitly none: the API is public and read-only),
// the document has a license, and every operation documents a 4xx
// response.
func TestSpecPassesTheLinterRules(t *testing.T) {
	if !regexp.MustCompile(`(?m)^security: \[\]`).Match(gateway.OpenAPIYAML) {
		t.Error("openapi.yaml declares no top-level security (security-defined): say `security: []` for a public API")
	}
	spec, err := LoadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The JSON form served at /api/openapi.json says it too.
	var served map[string]any
	if err := json.Unmarshal(spec.JSON, &served); err != nil {
		t.Fatal(err)
	}
	if sec, ok := served["security"].([]any); !ok || len(sec) != 0 {
		t.Errorf("/api/openapi.json: security = %v, want []", served["security"])
	}
	if l := spec.Doc.Info.License; l == nil || l.Name == "" || l.URL == "" {
		t.Error("info.license with a name and a url is missing (info-license, info-license-url)")
	}
	if !strings.Contains(strings.Join(strings.Fields(strings.ToLower(spec.Doc.Info.Description)), " "), "needs no authentication") {
		t.Error("info.description does not say that the API needs no authentication")
	}
	var ops int
	for path, item := range spec.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			codes := slices.Collect(func(yield func(string) bool) {
				for code := range op.Responses.Map() {
					if !yield(code) {
						return
					}
				}
			})
			if !slices.ContainsFunc(codes, func(c string) bool { return strings.HasPrefix(strings.ToUpper(c), "4") }) {
				t.Errorf("%s %s documents no 4xx response (operation-4xx-response): %v", method, path, codes)
			}
		}
	}
	if ops == 0 {
		t.Fatal("no operations in the spec")
	}
}
