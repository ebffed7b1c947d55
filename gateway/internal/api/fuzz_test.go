package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
)

// FuzzQuery sends arbitrary query strings (and path suffixes) to the API:
// it must never answer 5xx, every 4xx must be a problem document, and
// every answer must match the spec. The committed seed corpus is in
// testdata/fuzz/FuzzQuery; run it longer with
//
//	go test ./internal/api -run '^$' -fuzz FuzzQuery -fuzztime 2m -fuzzminimizetime 10s
func FuzzQuery(f *testing.F) {
	for _, seed := range []struct{ path, query string }{
		{"", "limit=5&offset=10&include_total=true"},
		{"", "post_id=3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b&name=Ada+Lovelace"},
		{"", "since=2025-01-01T00:00:00Z&until=2030-01-01T00:00:00.5+01:00"},
		{"", "cursor=AQAAAZrFL0H_WljT5tEqC_8BNDwH-jFVQr-3A3vWrQmR8vGhkU09XVI3mJrYV7BdDRw"},
		{"", "name[$ne]=x&limit=1;offset=2&%zz=1&limit=1"},
		{"/3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b", ""},
		{"/%7B%22$ne%22:null%7D", "x=1"},
	} {
		f.Add(seed.path, seed.query)
	}
	// A small collection of its own keeps each execution fast (FerretDB
	// scans), which matters most while the engine minimizes an input.
	coll := client.Database("commentflow_test").Collection("FuzzQuery")
	if err := coll.Drop(apitest.Ctx(f)); err != nil {
		f.Fatal(err)
	}
	if err := apitest.Insert(apitest.Ctx(f), coll, seeded[:40]); err != nil {
		f.Fatal(err)
	}
	raw, err := api.NewServer(context.Background(), api.Options{
		Collection: coll, Spec: spec, Cursors: testCodec, DBTimeout: 30 * time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	router, err := legacy.NewRouter(spec.Doc)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://gateway/api/v1/comments"+path+"?"+query, nil)
		if err != nil {
			t.Skip("not a URL a client can send")
		}
		req.RequestURI = req.URL.RequestURI()
		rec := httptest.NewRecorder()
		raw.ServeHTTP(rec, req)
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 {
			t.Fatalf("GET %s: %d %s", req.URL.RequestURI(), res.StatusCode, body)
		}
		if err := apitest.CheckResponse(req, res.StatusCode, res.Header, body, spec, router); err != nil {
			t.Fatalf("GET %s: %d: %v\n%s", req.URL.RequestURI(), res.StatusCode, err, body)
		}
	})
}
