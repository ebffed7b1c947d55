package store

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/devstack/infra"
)

// A duplicate key on another unique index than _id is not "already
// stored": the comment is new and was not stored.
func TestDuplicateOnAnotherIndexIsNotAlreadyStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})
	s := open(t, st.MongoURI())
	if _, err := s.Collection().Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "address", Value: 1}}, Options: options.Index().SetUnique(true).SetName("address_unique"),
	}); err != nil {
		t.Fatal(err)
	}
	d := docs(3)
	d[0].Address, d[1].Address, d[2].Address = "A", "B", "C"
	if res, _, err := s.Insert(ctx, d[:1]); err != nil || res.Inserted != 1 {
		t.Fatalf("first: %+v %v", res, err)
	}
	clash := docs(1)[0]
	clash.Address = "A" // new _id, same address as d[0]
	// In one batch: a redelivery of d[0] (already stored), the clash
	// (rejected: dead-lettered by the caller), then new comments.
	res, pending, err := s.Insert(ctx, []Document{d[0], clash, d[1], d[2]})
	if err != nil || len(pending) != 0 {
		t.Fatalf("nothing should be left to retry: %d pending, %v", len(pending), err)
	}
	if res.Duplicates != 1 || res.Inserted != 2 {
		t.Errorf("got %d inserted, %d already stored; want 2 and 1 (d[0] only)", res.Inserted, res.Duplicates)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Doc.ID != clash.ID || res.Rejected[0].Err == nil {
		t.Fatalf("a clash on address_unique must be rejected with a reason: %+v", res.Rejected)
	}
	t.Logf("rejected: %v", res.Rejected[0].Err)
	for _, want := range []Document{d[0], d[1], d[2]} {
		if n, err := s.Collection().CountDocuments(ctx, bson.D{{Key: "_id", Value: want.ID}}); err != nil || n != 1 {
			t.Errorf("%s stored %d times (%v), want once", want.ID, n, err)
		}
	}
	if n, err := s.Collection().CountDocuments(ctx, bson.D{{Key: "_id", Value: clash.ID}}); err != nil || n != 0 {
		t.Errorf("the clash is stored %d times (%v)", n, err)
	}
}
