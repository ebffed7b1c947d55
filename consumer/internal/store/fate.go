package store

import (
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/commentflow/commentflow/platform/mongoconn"
)

// Fate is what a write error means for the document that caused it.
type Fate int

// The fates of a document whose insert failed.
const (
	// FateRetry: the error can heal (or is not known to be permanent); the
	// document is retried and nothing after it is committed meanwhile.
	FateRetry Fate = iota
	// FateStored: a duplicate key on _id, the comment is already stored.
	FateStored
	// FateRejected: waiting cannot cure it; the record is dead-lettered
	// with class "store".
	FateRejected
	// FateUnsure: a duplicate key whose index the error does not name;
	// whether the _id is stored decides between FateStored and
	// FateRejected.
	FateUnsure
)

// Codes of MongoDB's error-code list,
// https://www.mongodb.com/docs/manual/reference/error-codes/ (the server's
// src/mongo/base/error_codes.yml).
const (
	codeDuplicateKey       = 11000 // DuplicateKey
	codeDuplicateKeyLegacy = 11001 // pre-2.6 duplicate key on insert, still mapped by the drivers
	codeDuplicateKeyUpdate = 12582 // legacy duplicate key on update (drivers' IsDuplicateKeyError)
)

// PermanentCodes are the write errors that are about the document itself,
// so retrying the same insert can never succeed: the record is poison (class
// "store"). Each is listed in MongoDB's error codes
// (https://www.mongodb.com/docs/manual/reference/error-codes/); the
// document limits are in https://www.mongodb.com/docs/manual/reference/limits/
// and schema validation in
// https://www.mongodb.com/docs/manual/core/schema-validation/handle-invalid-documents/.
// A duplicate key on an index other than _id is permanent too.
var PermanentCodes = map[int]string{
	2:     "BadValue",
	14:    "TypeMismatch",
	17:    "UnsupportedFormat",
	52:    "DollarPrefixedFieldName",
	55:    "InvalidDBRef",
	56:    "EmptyFieldName",
	57:    "DottedFieldName",
	121:   "DocumentValidationFailure", // the collection's validator refused it
	10334: "BSONObjectTooLarge",        // over the 16 MiB document limit
	17280: "KeyTooLong",                // an index key over the (pre-4.2) 1024-byte limit
	17419: "DocumentTooLarge",
}

// TransientCodes are the write errors that mean "not now": the server is
// stepping down, has no writable primary, was interrupted, ran out of time
// or could not satisfy the write concern (mongoconn.TransientCodes, shared
// with the gateway), and for an insert also a lock or write conflict and
// FerretDB's InternalError. They are retried with backoff. Listed to
// document them and for the tests: every code that is not permanent is
// retried too, so an unknown error never loses a comment (it stalls its
// partition, logged and visible in the lag, until an operator looks).
var TransientCodes = mongoconn.TransientCodesWith(map[int]string{
	46:  "LockBusy",
	64:  "WriteConcernFailed", // WriteConcernTimeout
	112: "WriteConflict",
	1:   "InternalError", // FerretDB's spelling of an expired time limit and of backend trouble
})

// FateOf classifies one write error of an insert.
func FateOf(we mongo.WriteError) Fate {
	switch {
	case isDuplicateCode(we.Code):
		switch dupOnID(we) {
		case yes:
			return FateStored
		case no:
			return FateRejected
		default:
			return FateUnsure
		}
	case PermanentCodes[we.Code] != "":
		return FateRejected
	default:
		return FateRetry
	}
}

func isDuplicateCode(code int) bool {
	return code == codeDuplicateKey || code == codeDuplicateKeyLegacy || code == codeDuplicateKeyUpdate
}

type tri int

const (
	unknown tri = iota
	yes
	no
)

// dupOnID reads which key a duplicate-key error is about: the server's
// keyPattern (MongoDB 4.4+), else keyValue, else the index name in the
// message ("... index: _id_ dup key: ..."); FerretDB gives none of them.
func dupOnID(we mongo.WriteError) tri {
	for _, doc := range []bson.Raw{we.Raw, we.Details} {
		for _, field := range []string{"keyPattern", "keyValue"} {
			v, err := doc.LookupErr(field)
			if err != nil || v.Type != bson.TypeEmbeddedDocument {
				continue
			}
			elems, err := v.Document().Elements()
			if err != nil || len(elems) == 0 {
				continue
			}
			if len(elems) == 1 && elems[0].Key() == "_id" {
				return yes
			}
			return no
		}
	}
	if _, rest, ok := strings.Cut(we.Message, " index: "); ok {
		name, _, _ := strings.Cut(rest, " ")
		if name == "_id_" {
			return yes
		}
		return no
	}
	return unknown
}
