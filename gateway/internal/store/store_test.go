package store_test

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/commentflow/commentflow/gateway/internal/store"
)

// The query-level behavior is tested against FerretDB through the HTTP
// API (internal/api); these tests pin the shape of the filters.

func TestFilterDocValuesAreLiterals(t *testing.T) {
	f := store.Filter{PostID: `{"$gt":""}`, Name: "$where"}
	got, err := bson.MarshalExtJSON(store.FilterDoc(f, nil), false, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"post_id":{"$eq":"{\"$gt\":\"\"}"},"name":{"$eq":"$where"}}`
	if string(got) != want {
		t.Errorf("filter\n got %s\nwant %s", got, want)
	}
}

func TestFilterDocEmpty(t *testing.T) {
	if doc := store.FilterDoc(store.Filter{}, nil); len(doc) != 0 {
		t.Errorf("no filter: %v", doc)
	}
}

func TestFilterDocTimeBoundsRoundUp(t *testing.T) {
	since := time.Date(2025, 1, 1, 0, 0, 0, 500_000, time.FixedZone("", 3600)) // 0.5 ms
	until := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	doc := store.FilterDoc(store.Filter{Since: &since, Until: &until}, nil)
	created := doc[0].Value.(bson.D)
	gte, lt := created[0].Value.(time.Time), created[1].Value.(time.Time)
	if created[0].Key != "$gte" || !gte.Equal(since.Truncate(time.Millisecond).Add(time.Millisecond)) {
		t.Errorf("since: %v %v", created[0].Key, gte)
	}
	if created[1].Key != "$lt" || !lt.Equal(until) {
		t.Errorf("until: %v %v", created[1].Key, lt)
	}
}

func TestFilterDocKeyset(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 7_000_000, time.UTC)
	doc := store.FilterDoc(store.Filter{PostID: "p"}, &store.Position{CreatedAt: at, ID: "id"})
	got, err := bson.MarshalExtJSON(doc, true, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"post_id":{"$eq":"p"},"$or":[{"created_at":{"$lt":{"$date":{"$numberLong":"1735689600007"}}}},` +
		`{"created_at":{"$eq":{"$date":{"$numberLong":"1735689600007"}}},"_id":{"$lt":"id"}}]}`
	if string(got) != want {
		t.Errorf("keyset filter\n got %s\nwant %s", got, want)
	}
}
