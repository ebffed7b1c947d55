package api

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string           `json:"type"`
	Title    string           `json:"title"`
	Status   int              `json:"status"`
	Detail   string           `json:"detail,omitempty"`
	Instance string           `json:"instance,omitempty"`
	Errors   []ParameterError `json:"errors,omitempty"`
}

// ParameterError names one offending request parameter and why.
type ParameterError struct {
	Parameter string `json:"parameter"`
	In        string `json:"in"` // query, path or header
	Reason    string `json:"reason"`
}

// Problem types (relative URI references, documented in openapi.yaml).
const (
	TypeInvalidParameters = "/problems/invalid-parameters"
	TypeNotFound          = "/problems/not-found"
	TypeMethodNotAllowed  = "/problems/method-not-allowed"
	TypeUnavailable       = "/problems/unavailable"
	TypeInternal          = "/problems/internal"
)

// ProblemContentType is the media type of problem documents.
const ProblemContentType = "application/problem+json"

// maxReportedErrors bounds the errors listed in one problem, so a request
// with thousands of bad parameters cannot make a huge answer.
const maxReportedErrors = 20

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.EscapedPath()
	}
	h := w.Header()
	h.Del("ETag")
	h.Set("Cache-Control", "no-store")
	writeJSON(w, p.Status, ProblemContentType, p)
}

func notFound(w http.ResponseWriter, r *http.Request, detail string) {
	writeProblem(w, r, Problem{Type: TypeNotFound, Title: "Not Found", Status: http.StatusNotFound, Detail: detail})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeProblem(w, r, Problem{
		Type: TypeMethodNotAllowed, Title: "Method Not Allowed", Status: http.StatusMethodNotAllowed,
		Detail: fmt.Sprintf("%s is not allowed here; only GET and HEAD are.", safeText(r.Method, 32)),
	})
}

func invalidParameters(w http.ResponseWriter, r *http.Request, errs []ParameterError) {
	more := 0
	if len(errs) > maxReportedErrors {
		more = len(errs) - maxReportedErrors
		errs = errs[:maxReportedErrors]
	}
	var names []string
	seen := map[string]bool{}
	for _, e := range errs {
		if !seen[e.Parameter] {
			seen[e.Parameter] = true
			names = append(names, e.Parameter)
		}
	}
	detail := fmt.Sprintf("Invalid parameter: %s.", names[0])
	if len(names) > 1 {
		detail = fmt.Sprintf("%d parameters are invalid: %s.", len(names), strings.Join(names, ", "))
	}
	if more > 0 {
		detail += fmt.Sprintf(" %d more errors were not listed.", more)
	}
	writeProblem(w, r, Problem{
		Type: TypeInvalidParameters, Title: "Invalid request parameters", Status: http.StatusBadRequest,
		Detail: detail, Errors: errs,
	})
}

func unavailable(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("Retry-After", "1")
	writeProblem(w, r, Problem{Type: TypeUnavailable, Title: "Service Unavailable", Status: http.StatusServiceUnavailable, Detail: detail})
}

func internalError(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, Problem{
		Type: TypeInternal, Title: "Internal Server Error", Status: http.StatusInternalServerError,
		Detail: "The server failed to answer; the error was logged.",
	})
}

// safeText makes client-supplied text fit to echo in a problem: valid
// UTF-8, at most limit bytes.
func safeText(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
