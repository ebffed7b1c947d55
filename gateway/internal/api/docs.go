package api

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5/static"
	"github.com/swaggest/swgui/v5emb"
)

const (
	docsPath     = "/api/openapi"
	specJSONPath = "/api/openapi.json"
	specYAMLPath = "/api/openapi.yaml"
)

// swaggerUI serves Swagger UI (swagger-ui-dist embedded in
// github.com/swaggest/swgui, no CDN) for the spec at /api/openapi.json.
// Only the files the UI consists of are served; any other path under
// /api/openapi/ is a 404 problem.
func swaggerUI() (index, asset http.Handler) {
	ui := v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "commentflow gateway",
		SwaggerJSON: specJSONPath,
		BasePath:    docsPath + "/",
		SettingsUI: map[string]string{
			"defaultModelsExpandDepth": "1",
			"displayRequestDuration":   "true",
			"docExpansion":             `"list"`,
		},
	})
	files := map[string]bool{}
	entries, _ := fs.ReadDir(static.FS, ".")
	for _, e := range entries {
		files[strings.TrimSuffix(e.Name(), ".gz")] = true
	}
	asset = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !files[r.PathValue("file")] {
			notFound(w, r, "No such Swagger UI file.")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		ui.ServeHTTP(w, r)
	})
	index = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		ui.ServeHTTP(w, r)
	})
	return index, asset
}

// specHandler serves one rendering of the spec, with an ETag.
func specHandler(contentType string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeCacheable(w, r, contentType, "no-cache", body)
	})
}
