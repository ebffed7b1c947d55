package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/devstack/infra"
)

func docs(n int) []Document {
	out := make([]Document, n)
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	for i := range out {
		out[i] = Document{ID: uuid.Must(uuid.NewV7()).String(), PostID: uuid.NewString(), Name: "Ada", Text: "hello",
			Address: "1 Main St", CreatedAt: now.Add(-time.Duration(i) * time.Second), IngestedAt: now,
			Kafka: Position{Partition: 2, Offset: int64(i)}, SchemaID: 7}
	}
	return out
}

func open(t *testing.T, uri string) *Store {
	t.Helper()
	s, err := Open(Config{URI: uri + "?serverSelectionTimeoutMS=1000", Database: "db", Collection: "comments", WriteConcern: "majority"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// Inserting again what is stored counts duplicates, not failures; the
// stored document has the storage contract's fields and BSON types.
func TestInsertIsIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})
	s := open(t, st.MongoURI())
	d := docs(10)
	res, pending, err := s.Insert(ctx, d[:4])
	if err != nil || pending != nil || !sameCounts(res, Result{Inserted: 4}) {
		t.Fatalf("first insert: %+v %d %v", res, len(pending), err)
	}
	res, pending, err = s.Insert(ctx, d)
	if err != nil || pending != nil || !sameCounts(res, Result{Inserted: 6, Duplicates: 4}) {
		t.Fatalf("second insert: %+v %d %v", res, len(pending), err)
	}
	if n, err := s.Collection().CountDocuments(ctx, bson.D{}); err != nil || n != 10 {
		t.Fatalf("count %d %v", n, err)
	}

	var raw bson.Raw
	if err := s.Collection().FindOne(ctx, bson.D{{Key: "_id", Value: d[1].ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	types := map[string]bson.Type{"_id": bson.TypeString, "post_id": bson.TypeString, "name": bson.TypeString,
		"text": bson.TypeString, "address": bson.TypeString, "created_at": bson.TypeDateTime,
		"ingested_at": bson.TypeDateTime, "kafka": bson.TypeEmbeddedDocument, "schema_id": bson.TypeInt32}
	elems, _ := raw.Elements()
	if len(elems) != len(types) {
		t.Errorf("document has %d fields, want %d: %s", len(elems), len(types), raw)
	}
	for field, want := range types {
		if got := raw.Lookup(field).Type; got != want {
			t.Errorf("%s is BSON %s, want %s", field, got, want)
		}
	}
	if p := raw.Lookup("kafka", "partition"); p.Type != bson.TypeInt32 || p.Int32() != 2 {
		t.Errorf("kafka.partition = %s", p)
	}
	if o := raw.Lookup("kafka", "offset"); o.Type != bson.TypeInt64 || o.Int64() != 1 {
		t.Errorf("kafka.offset = %s", o)
	}
	var back Document
	if err := bson.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	back.CreatedAt, back.IngestedAt = back.CreatedAt.UTC(), back.IngestedAt.UTC()
	if back != d[1] {
		t.Errorf("read back %+v, want %+v", back, d[1])
	}
}

// With the database down, an insert fails as a whole and can be retried
// once it is back.
func TestInsertWhileTheDatabaseIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})
	s := open(t, st.MongoURI())
	if err := st.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	d := docs(5)
	res, pending, err := s.Insert(ctx, d)
	if err == nil || len(pending) != len(d) || !sameCounts(res, Result{}) {
		t.Fatalf("insert while down: %+v, %d pending, %v", res, len(pending), err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Errorf("ping while down succeeded")
	}
	if err := st.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	res, pending, err = s.Insert(ctx, pending)
	if err != nil || pending != nil || res.Inserted+res.Duplicates != len(d) {
		t.Fatalf("retry: %+v %d %v", res, len(pending), err)
	}
}

// The gateway's indexes exist after EnsureIndexes, which can run again, and
// accepts the same keys indexed under another name.
func TestEnsureIndexes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})
	s := open(t, st.MongoURI())
	if _, err := s.Collection().Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: Indexes()[2].Keys, Options: options.Index().SetName("by_author")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.EnsureIndexes(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := s.Collection().Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Name string
		Key  bson.D
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, ix := range got {
		keys[ix.Name] = keyString(ix.Key)
	}
	for i, ix := range Indexes() {
		if i == 2 {
			continue // by_author
		}
		if keys[ix.Name] != keyString(ix.Keys) {
			t.Errorf("index %s: keys %q, want %q (have %v)", ix.Name, keys[ix.Name], keyString(ix.Keys), keys)
		}
	}
	if keys["by_author"] != keyString(Indexes()[2].Keys) {
		t.Errorf("index by_author: %v", keys)
	}
}

func keyString(d bson.D) string {
	var parts []string
	for _, e := range d {
		var n int64
		switch v := e.Value.(type) {
		case int32:
			n = int64(v)
		case int64:
			n = v
		case int:
			n = int64(v)
		case float64:
			n = int64(v)
		}
		parts = append(parts, e.Key+":"+map[bool]string{true: "1", false: "-1"}[n > 0])
	}
	return strings.Join(parts, ",")
}

func TestParseWriteConcern(t *testing.T) {
	for in, want := range map[string]any{"majority": "majority", "MAJORITY": "majority", "1": 1, "0": 0, "3": 3} {
		wc, err := ParseWriteConcern(in)
		if err != nil || wc.W != want {
			t.Errorf("%q: %v %v, want %v", in, wc, err, want)
		}
	}
	for _, in := range []string{"", "all", "-1", "1.5"} {
		if _, err := ParseWriteConcern(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestValidateURIDoesNotEchoIt(t *testing.T) {
	for _, uri := range []string{"mongodb://user:s3cret@/db", "mongodb://user:s3cret@host:99999/", "postgres://user:s3cret@host/"} {
		err := ValidateURI(uri)
		if err == nil {
			t.Errorf("%q accepted", uri)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error leaks the password: %v", uri, err)
		}
	}
	if err := ValidateURI("mongodb://user:pw@localhost:27017/?authSource=admin&tls=true"); err != nil {
		t.Errorf("valid URI rejected: %v", err)
	}
}
