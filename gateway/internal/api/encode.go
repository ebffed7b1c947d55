package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// encodeJSON renders v as the body of a response (a trailing newline, no
// HTML escaping so texts stay readable).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON writes v with status and content type. Headers are set before
// WriteHeader.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		// Only our own types are encoded here; this cannot happen.
		body, status, contentType = []byte(`{"type":"/problems/internal","title":"Internal Server Error","status":500}`+"\n"),
			http.StatusInternalServerError, ProblemContentType
	}
	writeBody(w, status, contentType, body)
}

func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body) // JSON (or the spec) with its Content-Type and nosniff, never HTML
}

// etagOf is a strong entity tag of a representation: its bytes decide it.
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// writeCacheable writes a 200 with an ETag, or a bodiless 304 when the
// request's If-None-Match matches it (RFC 9110 13.1.2, weak comparison).
func writeCacheable(w http.ResponseWriter, r *http.Request, contentType, cacheControl string, body []byte) {
	etag := etagOf(body)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", cacheControl)
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && noneMatchHits(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeBody(w, http.StatusOK, contentType, body)
}

// noneMatchHits reports whether an If-None-Match field (possibly several
// lines, each a comma-separated list, or "*") matches etag.
func noneMatchHits(lines []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, line := range lines {
		for tag := range strings.SplitSeq(line, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}
