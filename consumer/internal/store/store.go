// Package store writes comments to MongoDB exactly once.
//
// Comments are immutable events keyed by their id: the document's _id is the
// comment id, every write is an insert (never an upsert), and a duplicate-key
// error (code 11000) on a redelivered event means "already stored". That is
// what turns Kafka's at-least-once delivery into exactly-once in the
// database.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/commentflow/commentflow/platform/mongoconn"
	"github.com/commentflow/commentflow/platform/telemetry"
)

// Document is a stored comment. The field names are the storage contract
// the gateway reads (see DESIGN.md, "Storage").
type Document struct {
	ID         string    `bson:"_id"`
	PostID     string    `bson:"post_id"`
	Name       string    `bson:"name"`
	Text       string    `bson:"text"`
	Address    string    `bson:"address"`
	CreatedAt  time.Time `bson:"created_at"`  // BSON date, event time
	IngestedAt time.Time `bson:"ingested_at"` // BSON date, when this consumer stored it
	Kafka      Position  `bson:"kafka"`
	SchemaID   int       `bson:"schema_id"` // the writer schema the event was encoded with
	// TraceID is the W3C trace ID (32 hex digits) of the comment's
	// journey, continued from its record's traceparent header; absent
	// when the consumer does not trace.
	TraceID string `bson:"trace_id,omitempty"`
}

// Position is where in the topic a stored comment came from.
type Position struct {
	Partition int32 `bson:"partition"`
	Offset    int64 `bson:"offset"`
}

// duplicateKey is MongoDB's duplicate key error code.
const duplicateKey = 11000

// Index is one index of the comments collection.
type Index struct {
	Name string
	Keys bson.D
}

// Indexes are the indexes the gateway's queries need: the newest comments,
// a post's comments and an author's comments, each newest first with _id as
// the tie-breaker of its keyset pagination. The names are MongoDB's default
// names for these keys, so an index created by hand with the same keys is
// recognized rather than conflicting.
func Indexes() []Index {
	return []Index{
		{"created_at_-1__id_-1", bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
		{"post_id_1_created_at_-1__id_-1", bson.D{{Key: "post_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
		{"name_1_created_at_-1__id_-1", bson.D{{Key: "name", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
	}
}

// Config says where to store.
type Config struct {
	URI          string
	Database     string
	Collection   string
	WriteConcern string // "majority" or a number of members (0 = unacknowledged)
	AppName      string // shown in the server's logs and currentOp
	// Telemetry, when on, traces the client's commands (made by
	// platform/mongoconn, as every service's clients are).
	Telemetry *telemetry.Telemetry
}

// ValidateURI checks a MongoDB connection string without echoing it (it may
// hold a password).
func ValidateURI(uri string) error {
	if _, err := connstring.ParseAndValidate(uri); err != nil {
		return fmt.Errorf("not a valid MongoDB connection string: %s", scrub(err.Error(), uri))
	}
	return nil
}

// scrub removes the URI from a driver error message.
func scrub(msg, uri string) string {
	if uri != "" {
		msg = strings.ReplaceAll(msg, uri, "<uri>")
	}
	return msg
}

// ParseWriteConcern reads MONGODB_WRITE_CONCERN: "majority" or the number of
// members that must acknowledge a write (0 = unacknowledged).
func ParseWriteConcern(s string) (*writeconcern.WriteConcern, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "majority") {
		return writeconcern.Majority(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%q is not majority or a number of members (0, 1, 2...)", s)
	}
	return &writeconcern.WriteConcern{W: n}, nil
}

// Store is the comments collection.
type Store struct {
	client *mongo.Client
	coll   *mongo.Collection
	wc     *writeconcern.WriteConcern
}

// Open prepares a client for cfg. It does not wait for the server: the
// driver connects in the background and every operation waits for a server
// up to the server selection timeout (default 5s here, or the URI's
// serverSelectionTimeoutMS).
func Open(cfg Config) (*Store, error) {
	wc, err := ParseWriteConcern(cfg.WriteConcern)
	if err != nil {
		return nil, err
	}
	cs, err := connstring.ParseAndValidate(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("not a valid MongoDB connection string: %s", scrub(err.Error(), cfg.URI))
	}
	// Fail an attempt fast when the database is down, so that the caller's
	// backoff, logs and readiness see the outage; the URI's own settings
	// win.
	var opts []*options.ClientOptions
	if !cs.ServerSelectionTimeoutSet {
		opts = append(opts, options.Client().SetServerSelectionTimeout(5*time.Second))
	}
	if !cs.ConnectTimeoutSet {
		opts = append(opts, options.Client().SetConnectTimeout(5*time.Second))
	}
	mc := mongoconn.Config{URI: cfg.URI, Database: cfg.Database, Collection: cfg.Collection}
	client, _, err := mc.Connect(cfg.AppName, cfg.Telemetry, opts...)
	if err != nil {
		return nil, err // a runtime error, the password masked
	}
	coll := client.Database(cfg.Database).Collection(cfg.Collection, options.Collection().SetWriteConcern(wc))
	return &Store{client: client, coll: coll, wc: wc}, nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error {
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongodb disconnect: %w", err)
	}
	return nil
}

// Collection is the comments collection, for tests and tools.
func (s *Store) Collection() *mongo.Collection { return s.coll }

// Acknowledged reports whether writes are acknowledged (write concern not 0).
// Without acknowledgement nothing is known about a write: neither its
// success nor duplicates.
func (s *Store) Acknowledged() bool { return s.wc.Acknowledged() }

// Ping checks that the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongodb ping: %w", err)
	}
	return nil
}

// indexOptionsConflict is the error of creating an index whose keys an
// existing index already covers under another name or options.
const indexOptionsConflict = 85

// EnsureIndexes creates the gateway's indexes; it is a no-op when they
// exist. It creates them one by one: FerretDB (the test stand-in) drops the
// connection on a createIndexes command with several indexes, and one at a
// time costs nothing at startup.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, ix := range Indexes() {
		m := mongo.IndexModel{Keys: ix.Keys, Options: options.Index().SetName(ix.Name)}
		_, err := s.coll.Indexes().CreateOne(ctx, m)
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == indexOptionsConflict {
			continue // the same keys are indexed under another name: usable
		}
		if err != nil {
			return fmt.Errorf("create index %s on %s: %w", ix.Name, s.coll.Name(), err)
		}
	}
	return nil
}

// Result counts what one Insert did.
type Result struct {
	Inserted   int // new documents
	Duplicates int // documents whose _id was already there: stored before
}

// Insert writes docs with one unordered InsertMany. Duplicate-key errors
// mean the comment is already stored and count as success.
//
// When err is not nil the write failed and can be retried: pending holds
// the documents that may not be stored (all of them unless the server said
// precisely which writes failed), and res counts those that were. Inserting
// pending again is always safe because _id makes it idempotent; documents
// an earlier attempt did store then come back as duplicates.
func (s *Store) Insert(ctx context.Context, docs []Document) (Result, []Document, error) {
	if len(docs) == 0 {
		return Result{}, nil, nil
	}
	_, err := s.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	return classify(docs, err)
}

// classify reads the outcome of an unordered InsertMany of docs.
func classify(docs []Document, err error) (res Result, pending []Document, _ error) {
	if err == nil {
		return Result{Inserted: len(docs)}, nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		// A network error, a timeout, no server, or a write concern
		// failure: nothing is known for sure, retry everything.
		return Result{}, docs, fmt.Errorf("insert %d documents: %w", len(docs), err)
	}
	// An unordered insert tried every document; the server reports the
	// ones that failed by index, so the others are stored.
	failed := make(map[int]bool, len(bwe.WriteErrors))
	var firstOther error
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(docs) {
			return Result{}, docs, fmt.Errorf("insert %d documents: write error for index %d out of range: %w", len(docs), we.Index, err)
		}
		if isDuplicate(we.WriteError) {
			res.Duplicates++
			continue
		}
		failed[we.Index] = true
		if firstOther == nil {
			firstOther = fmt.Errorf("document %q: code %d: %s", docs[we.Index].ID, we.Code, we.Message)
		}
	}
	res.Inserted = len(docs) - res.Duplicates - len(failed)
	if len(failed) == 0 {
		return res, nil, nil
	}
	pending = make([]Document, 0, len(failed))
	for i := range docs {
		if failed[i] {
			pending = append(pending, docs[i])
		}
	}
	return res, pending, fmt.Errorf("insert %d documents: %d failed, first: %w", len(docs), len(failed), firstOther)
}

func isDuplicate(we mongo.WriteError) bool {
	return we.Code == duplicateKey || mongo.IsDuplicateKeyError(mongo.WriteException{WriteErrors: []mongo.WriteError{we}})
}
