// Package stored is the stored-document contract: the document the
// consumer writes to MongoDB and the gateway reads (field names and Go
// types), the list order, and the indexes that serve every query the
// gateway can issue. It has no dependencies (the bson tags need no import),
// so both services and their tests share it without linking more.
//
// To add a field: add its name below, add it to Document with its bson
// tag, and either give it an API property in gateway/openapi.yaml or list
// it in the gateway's contract test as not exposed, with the reason; a
// field that does not come from the Avro record (like trace_id, from the
// record's headers) is listed there as an addition of the stored side; the
// contract-chain test says what is missing.
package stored

import "time"

// The stored fields' names.
const (
	FieldID         = "_id" // the comment id, the idempotency key
	FieldPostID     = "post_id"
	FieldName       = "name"
	FieldText       = "text"
	FieldAddress    = "address"
	FieldCreatedAt  = "created_at"  // BSON date, event time
	FieldIngestedAt = "ingested_at" // BSON date, when the consumer stored it
	FieldKafka      = "kafka"       // {partition, offset}: where in the topic it came from
	FieldSchemaID   = "schema_id"   // the writer schema the event was encoded with
	// FieldTraceID is the W3C trace ID of the comment's journey. It is not
	// an Avro field: the consumer takes it from the record's traceparent
	// header, so it is an addition of the stored side (and served by the
	// API as Comment.trace_id).
	FieldTraceID = "trace_id"
)

// Document is a stored comment. Comments are immutable: a document is
// inserted once and never updated.
type Document struct {
	ID         string    `bson:"_id"`
	PostID     string    `bson:"post_id"`
	Name       string    `bson:"name"`
	Text       string    `bson:"text"`
	Address    string    `bson:"address"`
	CreatedAt  time.Time `bson:"created_at"`
	IngestedAt time.Time `bson:"ingested_at"`
	Kafka      Position  `bson:"kafka"`
	SchemaID   int       `bson:"schema_id"`
	// TraceID is the W3C trace ID (32 lowercase hex digits) of the
	// comment's journey, continued from its record's traceparent header;
	// absent when the consumer that stored it was not tracing.
	TraceID string `bson:"trace_id,omitempty"`
}

// Position is where in the topic a stored comment came from.
type Position struct {
	Partition int32 `bson:"partition"`
	Offset    int64 `bson:"offset"`
}

// Key is one field of an index or a sort, with its direction (1 or -1).
type Key struct {
	Field string
	Dir   int
}

// Sort is the list order: newest first, _id as the tie-break, so it is
// total and a keyset position is unambiguous.
var Sort = []Key{{FieldCreatedAt, -1}, {FieldID, -1}}

// Index is one index of the comments collection.
type Index struct {
	Name string
	Keys []Key
}

// Indexes are the indexes the gateway's queries need: for each combination
// of its equality filters (none, post, author, both), those fields then
// the list order, so a filtered, sorted, keyset- or time-bounded page is one
// index range scan. The names are MongoDB's default names for these keys,
// so an index created by hand with the same keys is recognized rather than
// conflicting.
func Indexes() []Index {
	byOrder := func(eq ...string) Index {
		var keys []Key
		for _, f := range eq {
			keys = append(keys, Key{f, 1})
		}
		keys = append(keys, Sort...)
		return Index{Name: DefaultName(keys), Keys: keys}
	}
	return []Index{
		byOrder(),
		byOrder(FieldPostID),
		byOrder(FieldName),
		byOrder(FieldPostID, FieldName),
	}
}

// DefaultName is MongoDB's default name of an index on keys:
// field_direction pairs joined by underscores.
func DefaultName(keys []Key) string {
	name := ""
	for i, k := range keys {
		if i > 0 {
			name += "_"
		}
		dir := "1"
		if k.Dir < 0 {
			dir = "-1"
		}
		name += k.Field + "_" + dir
	}
	return name
}
