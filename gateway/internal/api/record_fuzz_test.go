package api_test

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/schemas"
	"github.com/commentflow/commentflow/schemas/stored"
)

// FuzzRecord feeds whole records — every field of a Comment, plus bytes
// after the Avro body — through the consumer's path (the registry framing,
// schemas.Decoder with its validation, the stored document) and then the
// API. A record is either
//
//   - dead-lettered, with one of the poison classes; or
//   - stored, and then served by GET /api/v1/comments/{id} and found by
//     its post_id filter, with every value unchanged and every response
//     valid against openapi.yaml (apitest.Validating).
//
// Never stored in a form the API cannot serve. The committed corpus is in
// testdata/fuzz/FuzzRecord; run it longer with
//
//	go test ./internal/api -run '^$' -fuzz FuzzRecord -fuzztime 5m -parallel 1
func FuzzRecord(f *testing.F) {
	good := schemas.Comment{
		ID: "01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e1f", PostID: "5f0c2a9e-3b1d-4c6e-8a7f-1e2d3c4b5a69",
		Name: "Ada Lovelace", Text: "The engine weaves algebraic patterns.", Address: "12 St James's Square, London",
		CreatedAt: time.UnixMilli(1764240000123).UTC(),
	}
	add := func(c schemas.Comment, trailing []byte) {
		f.Add(c.ID, c.PostID, c.Name, c.Text, c.Address, c.CreatedAt.UnixMilli(), trailing)
	}
	add(good, nil)
	upper := good
	upper.ID, upper.PostID = strings.ToUpper(good.ID), strings.ToUpper(good.PostID)
	add(upper, nil)
	add(good, []byte{0, 1})
	for _, ms := range []int64{math.MaxInt64, math.MinInt64, 0, -1, 253402300800000 /* year 10000 */} {
		c := good
		c.CreatedAt = time.UnixMilli(ms)
		add(c, nil)
	}
	for _, s := range []string{"a\x00b", "\xff\xfe", "line\n\ttab", "\u2028\u00a0 ünï 🎉", "\x1b[31m", strings.Repeat("x", 10001)} {
		c := good
		c.Text, c.Name = s, s
		add(c, nil)
	}

	ctx := apitest.Ctx(f)
	reg := srfake.New()
	f.Cleanup(reg.Close)
	rcl, id := kafkatest.Register(ctx, f, reg.URL())
	enc, dec := schemas.NewEncoder(id), schemas.NewDecoder(rcl)
	coll := client.Database("commentflow_test").Collection("FuzzRecord")
	if err := coll.Drop(ctx); err != nil {
		f.Fatal(err)
	}
	raw, err := api.NewServer(context.Background(), api.Options{
		Collection: coll, Spec: spec, Cursors: testCodec, DBTimeout: 30 * time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	poison := map[schemas.ErrorClass]bool{schemas.ClassBadFraming: true, schemas.ClassUnknownSchema: true,
		schemas.ClassAvroDecode: true, schemas.ClassInvalid: true}

	f.Fuzz(func(t *testing.T, cid, post, name, text, address string, createdMs int64, trailing []byte) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // per input: a fuzz run outlasts apitest.Ctx
		defer cancel()
		in := schemas.Comment{ID: cid, PostID: post, Name: name, Text: text, Address: address,
			CreatedAt: time.UnixMilli(createdMs).UTC()}
		b, err := enc.Encode(&in)
		if err != nil {
			t.Skip("not encodable") // hamba/avro refuses what it cannot write
		}
		c, _, err := dec.Decode(ctx, append(b, trailing...))
		if err != nil {
			if class := schemas.ClassOf(err); !poison[class] {
				t.Fatalf("refused without a poison class (%q): %v", class, err)
			}
			return // dead-lettered with its class
		}
		// Stored as the consumer stores it.
		doc := stored.Document{ID: c.ID, PostID: c.PostID, Name: c.Name, Text: c.Text, Address: c.Address,
			CreatedAt: c.CreatedAt.UTC(), IngestedAt: time.Now().UTC().Truncate(time.Millisecond)}
		if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil { // only this comment, so nothing else answers for it
			t.Fatal(err)
		}
		if err := apitest.Insert(ctx, coll, []stored.Document{doc}); err != nil {
			t.Fatalf("a valid comment could not be stored: %v", err)
		}
		h := apitest.Validating(t, spec, raw)

		res := get(t, h, "/api/v1/comments/"+url.PathEscape(strings.ToUpper(in.ID)))
		if res.Status != http.StatusOK {
			t.Fatalf("GET stored comment %q: %d %s", in.ID, res.Status, res.Body)
		}
		var got api.Comment
		res.json(t, &got)
		want := api.Comment{ID: strings.ToLower(in.ID), PostID: strings.ToLower(in.PostID), Name: in.Name, Text: in.Text,
			Address: in.Address, CreatedAt: in.CreatedAt.UTC().Format(api.TimeFormat), IngestedAt: got.IngestedAt}
		if got != want {
			t.Fatalf("served\n %+v\nwant\n %+v", got, want)
		}
		if _, err := time.Parse(time.RFC3339, got.CreatedAt); err != nil {
			t.Fatalf("created_at %q is not RFC 3339: %v", got.CreatedAt, err)
		}

		page, res := getPage(t, h, "/api/v1/comments?limit=100&post_id="+url.QueryEscape(strings.ToUpper(in.PostID)))
		if res.Status != http.StatusOK {
			t.Fatalf("list by post_id: %d %s", res.Status, res.Body)
		}
		found := false
		for _, it := range page.Items {
			found = found || it.ID == want.ID
		}
		if !found {
			t.Fatalf("comment %s not found by its post_id %s", want.ID, in.PostID)
		}
	})
}
