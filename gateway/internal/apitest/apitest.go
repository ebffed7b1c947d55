// Package apitest helps the gateway's tests: it makes and stores comments
// the way the consumer does, and wraps a handler so that every response
// is checked against openapi.yaml. It is imported only by tests.
package apitest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/store"
	"github.com/commentflow/commentflow/schemas/stored"
)

// Names and Posts are the pools comments are drawn from, small enough that
// filters match several comments.
var (
	Names = []string{"Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson"}
	Posts = []string{
		"3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b", "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
		"0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e", "c4d5e6f7-a8b9-4c0d-ae1f-2a3b4c5d6e7f",
	}
)

// Comments makes n comments, deterministic for a seed, newest first in
// list order, created at or before newest. Consecutive comments are 0-3 ms
// apart, so many share a created_at and the id tie-break matters.
func Comments(n int, seed uint64, newest time.Time) []store.Comment {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) //nolint:gosec // G404: reproducible test data, not secrets
	at := newest.UTC().Truncate(time.Millisecond)
	out := make([]store.Comment, n)
	for i := range out {
		var id uuid.UUID
		binary.LittleEndian.PutUint64(id[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(id[8:], rng.Uint64())
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
		out[i] = store.Comment{
			ID:         id.String(),
			PostID:     Posts[rng.IntN(len(Posts))],
			Name:       Names[rng.IntN(len(Names))],
			Text:       fmt.Sprintf("comment %d: <b>%q</b> & ünïcödé", i, "quoted"),
			Address:    fmt.Sprintf("%d Main Street, Springfield", rng.IntN(1000)),
			CreatedAt:  at,
			IngestedAt: at.Add(time.Duration(rng.IntN(500)) * time.Millisecond),
		}
		at = at.Add(-time.Duration(rng.IntN(4)) * time.Millisecond)
	}
	SortNewestFirst(out)
	return out
}

// SortNewestFirst sorts comments in list order: created_at desc, id desc.
func SortNewestFirst(cs []store.Comment) {
	slices.SortFunc(cs, func(a, b store.Comment) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

// Insert stores comments as the consumer does (plus the kafka position and
// schema id the API does not expose).
func Insert(ctx context.Context, coll *mongo.Collection, cs []store.Comment) error {
	docs := make([]any, len(cs))
	for i, c := range cs {
		c.Kafka = stored.Position{Partition: int32(i % 3), Offset: int64(i)}
		c.SchemaID = 1
		docs[i] = c
	}
	for len(docs) > 0 {
		n := min(len(docs), 500)
		if _, err := coll.InsertMany(ctx, docs[:n], options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("insert comments: %w", err)
		}
		docs = docs[n:]
	}
	return nil
}

// Validating wraps h so that every response it gives is checked against
// the spec; a mismatch fails t. Responses of spec operations are checked
// with openapi3filter.ValidateResponse (undocumented status codes are
// errors too); every other 4xx/5xx must be a valid problem document.
// Routes are found with kin-openapi's own router, independently of chi.
func Validating(t testing.TB, spec *api.Spec, h http.Handler) http.Handler {
	t.Helper()
	router, err := legacy.NewRouter(spec.Doc)
	if err != nil {
		t.Fatalf("kin-openapi router: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		res := rec.Result()
		body := rec.Body.Bytes()
		if err := CheckResponse(r, res.StatusCode, res.Header, body, spec, router); err != nil {
			t.Errorf("%s %s: response does not match openapi.yaml: %v\nstatus %d, headers %v\nbody: %.2000s",
				r.Method, r.URL.RequestURI(), err, res.StatusCode, res.Header, body)
		}
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(body)
	})
}

// CheckResponse validates one response against the spec (see Validating).
func CheckResponse(r *http.Request, status int, header http.Header, body []byte, spec *api.Spec, router routers.Router) error {
	route, pathParams, err := router.FindRoute(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(route.Path, "/") {
		err = fmt.Errorf("kin-openapi's router ignores a trailing slash; the gateway does not")
	}
	if err != nil {
		// Not an operation of the spec (docs, unknown path): any error
		// must still be a problem document.
		if status >= 400 {
			return CheckProblem(status, header, body, spec)
		}
		return nil
	}
	if status >= 400 && header.Get("Content-Type") == api.ProblemContentType {
		// The schema is checked below; check what it cannot express.
		if err := CheckProblem(status, header, body, spec); err != nil {
			return err
		}
	}
	opts := *spec.FilterOptions()
	opts.IncludeResponseStatus = true
	opts.MultiError = true
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: pathParams, Route: route, Options: &opts,
		},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &opts,
	}
	if err := openapi3filter.ValidateResponse(r.Context(), in); err != nil {
		return err
	}
	if status == http.StatusNotModified && len(body) > 0 {
		return fmt.Errorf("304 with a body")
	}
	return nil
}

// CheckProblem checks that an error response is an RFC 9457 problem
// document matching the Problem schema, with the response's status.
func CheckProblem(status int, header http.Header, body []byte, spec *api.Spec) error {
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || mt != api.ProblemContentType {
		return fmt.Errorf("status %d with Content-Type %q, want %s", status, header.Get("Content-Type"), api.ProblemContentType)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("problem is not JSON: %w", err)
	}
	schema := spec.Doc.Components.Schemas["Problem"].Value
	if err := schema.VisitJSON(doc, spec.Doc.GetSchemaValidationOptions()...); err != nil {
		return fmt.Errorf("problem does not match the Problem schema: %w", err)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("problem: %w", err)
	}
	if p.Status != status {
		return fmt.Errorf("problem status %d in a %d response", p.Status, status)
	}
	if p.Type == "" || p.Title == "" || p.Detail == "" || p.Instance == "" {
		return fmt.Errorf("problem lacks type, title, detail or instance: %+v", p)
	}
	if status == http.StatusBadRequest && len(p.Errors) == 0 {
		return fmt.Errorf("400 problem names no parameter")
	}
	return nil
}

// Ctx is a context for test operations on the database.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
