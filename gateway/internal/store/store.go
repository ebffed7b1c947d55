// Package store reads comments from MongoDB for the gateway. It is the only
// place that builds queries, and it builds them only from typed values
// (strings compared with $eq, time.Time bounds, a typed keyset position), so
// nothing a client sends can become a query operator.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/commentflow/commentflow/schemas/stored"
)

// ErrNotFound is returned by Get when no comment has the id.
var ErrNotFound = errors.New("comment not found")

// Comment is a stored comment as the gateway reads it: the document of
// schemas/stored. Reads project away `kafka` and `schema_id`, which the API
// does not expose, so they are zero here.
type Comment = stored.Document

// Filter selects comments; zero fields do not filter. Since is inclusive,
// Until exclusive.
type Filter struct {
	PostID string
	Name   string
	Since  *time.Time
	Until  *time.Time
}

// Position is a keyset position: List returns the comments strictly after
// it in the list order (created_at desc, _id desc).
type Position struct {
	CreatedAt time.Time
	ID        string
}

// Query is one page request.
type Query struct {
	Filter
	After  *Position // keyset pagination; nil = from the newest
	Offset int64     // offset pagination; 0 = none
	Limit  int64     // > 0
}

// Observer is told how long each database operation took (for metrics).
type Observer func(op string, d time.Duration, err error)

// Store reads one collection. Safe for concurrent use.
type Store struct {
	coll    *mongo.Collection
	observe Observer
}

// New returns a store over coll. observe may be nil.
func New(coll *mongo.Collection, observe Observer) *Store {
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	return &Store{coll: coll, observe: observe}
}

// Sort is the list order (stored.Sort): newest first, _id as the
// tie-break, so it is total and a keyset position is unambiguous.
var Sort = keysDoc(stored.Sort)

// projection is the stored fields the API serves.
var projection = bson.D{
	{Key: stored.FieldID, Value: 1}, {Key: stored.FieldPostID, Value: 1}, {Key: stored.FieldName, Value: 1},
	{Key: stored.FieldText, Value: 1}, {Key: stored.FieldAddress, Value: 1}, {Key: stored.FieldCreatedAt, Value: 1},
	{Key: stored.FieldIngestedAt, Value: 1}, {Key: stored.FieldTraceID, Value: 1},
}

func keysDoc(keys []stored.Key) bson.D {
	d := make(bson.D, 0, len(keys))
	for _, k := range keys {
		d = append(d, bson.E{Key: k.Field, Value: k.Dir})
	}
	return d
}

// FilterDoc is the MongoDB filter of f and an optional keyset position.
// Exported so tests can run the same query directly.
func FilterDoc(f Filter, after *Position) bson.D {
	doc := bson.D{}
	if f.PostID != "" {
		doc = append(doc, bson.E{Key: stored.FieldPostID, Value: bson.D{{Key: "$eq", Value: f.PostID}}})
	}
	if f.Name != "" {
		doc = append(doc, bson.E{Key: stored.FieldName, Value: bson.D{{Key: "$eq", Value: f.Name}}})
	}
	var created bson.D
	if f.Since != nil {
		created = append(created, bson.E{Key: "$gte", Value: ceilMilli(*f.Since)})
	}
	if f.Until != nil {
		created = append(created, bson.E{Key: "$lt", Value: ceilMilli(*f.Until)})
	}
	if len(created) > 0 {
		doc = append(doc, bson.E{Key: stored.FieldCreatedAt, Value: created})
	}
	if after != nil {
		at := after.CreatedAt.UTC().Truncate(time.Millisecond)
		doc = append(doc, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: stored.FieldCreatedAt, Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{
				{Key: stored.FieldCreatedAt, Value: bson.D{{Key: "$eq", Value: at}}},
				{Key: stored.FieldID, Value: bson.D{{Key: "$lt", Value: after.ID}}},
			},
		}})
	}
	return doc
}

// ceilMilli rounds t up to a whole millisecond. Stored dates have
// millisecond precision, so for a stored c: c >= t ⇔ c >= ceil(t) and
// c < t ⇔ c < ceil(t), whereas the driver would truncate t.
func ceilMilli(t time.Time) time.Time {
	t = t.UTC()
	if tr := t.Truncate(time.Millisecond); !tr.Equal(t) {
		return tr.Add(time.Millisecond)
	}
	return t
}

// List returns up to q.Limit comments in list order.
func (s *Store) List(ctx context.Context, q Query) (_ []Comment, err error) {
	defer s.timed("find", time.Now(), &err)
	opts := options.Find().
		SetSort(Sort).
		SetProjection(projection).
		SetLimit(q.Limit) // at most 101: one batch
	if q.Offset > 0 {
		opts.SetSkip(q.Offset)
	}
	cur, err := s.coll.Find(ctx, FilterDoc(q.Filter, q.After), opts)
	if err != nil {
		return nil, fmt.Errorf("find comments: %w", err)
	}
	out := make([]Comment, 0, q.Limit)
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read comments: %w", err)
	}
	return out, nil
}

// Count returns the exact number of comments matching f.
func (s *Store) Count(ctx context.Context, f Filter) (_ int64, err error) {
	defer s.timed("count", time.Now(), &err)
	n, err := s.coll.CountDocuments(ctx, FilterDoc(f, nil))
	if err != nil {
		return 0, fmt.Errorf("count comments: %w", err)
	}
	return n, nil
}

// Get returns the comment with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (_ Comment, err error) {
	defer s.timed("get", time.Now(), &err)
	var c Comment
	err = s.coll.FindOne(ctx, bson.D{{Key: stored.FieldID, Value: bson.D{{Key: "$eq", Value: id}}}},
		options.FindOne().SetProjection(projection)).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Comment{}, ErrNotFound
	}
	if err != nil {
		return Comment{}, fmt.Errorf("get comment: %w", err)
	}
	return c, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) (err error) {
	defer s.timed("ping", time.Now(), &err)
	if err := s.coll.Database().Client().Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

func (s *Store) timed(op string, start time.Time, err *error) {
	e := *err
	if errors.Is(e, ErrNotFound) {
		e = nil
	}
	s.observe(op, time.Since(start), e)
}
