package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/gateway/internal/store"
)

// Shared by the package's tests: one FerretDB, seeded once.
var (
	mongoURI string
	client   *mongo.Client
	spec     *api.Spec
	// seeded is the content of the shared "comments" collection, in list
	// order. Tests must not write to it; they use their own collection.
	seeded []store.Comment
)

const seedCount = 300

// newest is when the newest seeded comment was created.
var newest = time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	os.Exit(infra.Main(m, infra.Options{}, func(ctx context.Context, st *infra.Stack) (func(), error) {
		mongoURI = st.MongoURI()
		var err error
		if client, err = mongo.Connect(options.Client().ApplyURI(mongoURI)); err != nil {
			return nil, err
		}
		disconnect := func() { _ = client.Disconnect(context.Background()) }
		if spec, err = api.LoadSpec(ctx); err != nil {
			return disconnect, err
		}
		seeded = apitest.Comments(seedCount, 1, newest)
		for i := range seeded {
			if i%2 == 0 { // traced by the consumer; the others not
				seeded[i].TraceID = fmt.Sprintf("%032x", i+1)
			}
		}
		return disconnect, apitest.Insert(ctx, client.Database("commentflow").Collection("comments"), seeded)
	}))
}

// testCodec signs cursors in tests, so cursors can be made by hand.
var testCodec, _ = cursor.New([]byte("test secret, 16+ bytes long"))

type serverOpts struct {
	coll   *mongo.Collection
	cors   []string
	client *mongo.Client
}

// newServer returns the gateway handler over the shared collection (or
// o.coll), wrapped so every response is checked against the spec.
func newServer(t testing.TB, o serverOpts) http.Handler {
	t.Helper()
	if o.coll == nil {
		c := client
		if o.client != nil {
			c = o.client
		}
		o.coll = c.Database("commentflow").Collection("comments")
	}
	h, err := api.NewServer(context.Background(), api.Options{
		Collection: o.coll, Spec: spec, Cursors: testCodec, CORSOrigins: o.cors, DBTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Validating(t, spec, h)
}

// freshCollection is an empty collection for a test that writes.
func freshCollection(t testing.TB) *mongo.Collection {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	coll := client.Database("commentflow_test").Collection(name)
	if err := coll.Drop(apitest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	return coll
}

// countingClient is a client whose data commands are counted, to prove a
// request did not reach the database.
func countingClient(t testing.TB) (*mongo.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "find", "count", "aggregate", "getMore", "distinct":
			n.Add(1)
		}
	}}
	c, err := mongo.Connect(options.Client().ApplyURI(mongoURI).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c, &n
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r response) problem(t testing.TB) api.Problem {
	t.Helper()
	var p api.Problem
	r.json(t, &p)
	return p
}

func get(t testing.TB, h http.Handler, target string, header ...string) response {
	t.Helper()
	return do(t, h, http.MethodGet, target, header...)
}

func do(t testing.TB, h http.Handler, method, target string, header ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: body}
}

func getPage(t testing.TB, h http.Handler, target string) (api.Page, response) {
	t.Helper()
	res := get(t, h, target)
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, res.Status, res.Body)
	}
	var p api.Page
	res.json(t, &p)
	return p, res
}

func ids(items []api.Comment) []string {
	out := make([]string, len(items))
	for i, c := range items {
		out[i] = c.ID
	}
	return out
}

func storeIDs(cs []store.Comment) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// where returns the seeded comments matching keep, in list order.
func where(cs []store.Comment, keep func(store.Comment) bool) []store.Comment {
	var out []store.Comment
	for _, c := range cs {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}
