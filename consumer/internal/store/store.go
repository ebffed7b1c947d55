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
	"github.com/commentflow/commentflow/schemas/stored"
)

// Document is a stored comment: the storage contract the gateway reads,
// defined once in schemas/stored.
type Document = stored.Document

// Position is where in the topic a stored comment came from.
type Position = stored.Position

// Index is one index of the comments collection, as the driver takes it.
type Index struct {
	Name string
	Keys bson.D
}

// Indexes are the indexes the gateway's queries need, declared in
// schemas/stored (where a test proves each gateway query has one).
func Indexes() []Index {
	var out []Index
	for _, ix := range stored.Indexes() {
		keys := make(bson.D, 0, len(ix.Keys))
		for _, k := range ix.Keys {
			keys = append(keys, bson.E{Key: k.Field, Value: k.Dir})
		}
		out = append(out, Index{Name: ix.Name, Keys: keys})
	}
	return out
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

// Namespace is the database and collection names, for the insert span.
func (s *Store) Namespace() (database, collection string) {
	return s.coll.Database().Name(), s.coll.Name()
}

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

// ErrorClass is the dead-letter class (header error.class) of a document
// the database refused for good.
const ErrorClass = "store"

// Result counts what one Insert did.
type Result struct {
	Inserted   int        // new documents
	Duplicates int        // documents whose _id was already there: stored before
	Rejected   []Rejected // documents the database will never take: poison (class "store")
}

// Rejected is a document the database refused for a reason waiting cannot
// cure, with that reason.
type Rejected struct {
	Doc Document
	Err error
}

// Insert writes docs with one unordered InsertMany and classifies every
// write error (see Fate):
//
//   - a duplicate key on _id means the comment is already stored: success;
//   - a permanent error (PermanentCodes, or a duplicate key on any other
//     unique index) rejects the document: it is in res.Rejected and the
//     caller dead-letters it;
//   - anything else can heal, so the document is pending and err is set.
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
	res, pending, unsure, err := classify(docs, err)
	if len(unsure) == 0 {
		return res, pending, err
	}
	// Duplicate keys the server did not name the index of (FerretDB never
	// does): the comment is already stored exactly when its _id is there.
	stored, lerr := s.storedIDs(ctx, unsure)
	if lerr != nil {
		pending = append(pending, unsure...)
		if err == nil {
			err = fmt.Errorf("insert %d documents: %d duplicate keys not classified: %w", len(docs), len(unsure), lerr)
		}
		return res, pending, err
	}
	for _, d := range unsure {
		if stored[d.ID] {
			res.Duplicates++
			continue
		}
		res.Rejected = append(res.Rejected, Rejected{Doc: d,
			Err: fmt.Errorf("document %q: duplicate key on a unique index other than _id", d.ID)})
	}
	return res, pending, err
}

// storedIDs reports which of docs' ids are stored.
func (s *Store) storedIDs(ctx context.Context, docs []Document) (map[string]bool, error) {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	cur, err := s.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("look up duplicate ids: %w", err)
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("look up duplicate ids: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, f := range found {
		out[f.ID] = true
	}
	return out, nil
}

// classify reads the outcome of an unordered InsertMany of docs. unsure
// are the documents that failed with a duplicate key whose index the error
// does not name: the caller looks their _id up.
func classify(docs []Document, err error) (res Result, pending, unsure []Document, _ error) {
	if err == nil {
		return Result{Inserted: len(docs)}, nil, nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		// A network error, a timeout, no server, or a write concern
		// failure: nothing is known for sure, retry everything.
		return Result{}, docs, nil, fmt.Errorf("insert %d documents: %w", len(docs), err)
	}
	// An unordered insert tried every document; the server reports the
	// ones that failed by index, so the others are stored.
	retry := make(map[int]bool, len(bwe.WriteErrors))
	var firstRetry error
	failed := 0
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(docs) {
			return Result{}, docs, nil, fmt.Errorf("insert %d documents: write error for index %d out of range: %w", len(docs), we.Index, err)
		}
		d := docs[we.Index]
		switch FateOf(we.WriteError) {
		case FateStored:
			res.Duplicates++
			continue
		case FateUnsure:
			unsure = append(unsure, d)
		case FateRejected:
			res.Rejected = append(res.Rejected, Rejected{Doc: d, Err: fmt.Errorf("document %q: %w", d.ID, we.WriteError)})
		case FateRetry:
			retry[we.Index] = true
			if firstRetry == nil {
				firstRetry = fmt.Errorf("document %q: code %d: %s", d.ID, we.Code, we.Message)
			}
		}
		failed++
	}
	res.Inserted = len(docs) - res.Duplicates - failed
	if len(retry) == 0 {
		return res, nil, unsure, nil
	}
	pending = make([]Document, 0, len(retry))
	for i := range docs {
		if retry[i] {
			pending = append(pending, docs[i])
		}
	}
	return res, pending, unsure, fmt.Errorf("insert %d documents: %d failed, first: %w", len(docs), len(retry), firstRetry)
}
