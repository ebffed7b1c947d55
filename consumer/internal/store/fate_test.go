package store

import (
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func sameCounts(a, b Result) bool {
	return a.Inserted == b.Inserted && a.Duplicates == b.Duplicates && len(a.Rejected) == len(b.Rejected)
}

// writeErr builds a write error as the driver does from a server reply
// (mongo.writeErrorsFromDriverWriteErrors, then InsertMany wraps each in a
// BulkWriteError): Raw is the server's whole write error document.
func writeErr(index, code int, msg string, extra ...bson.E) mongo.BulkWriteError {
	doc := bson.D{{Key: "index", Value: int32(index)}, {Key: "code", Value: int32(code)}}
	doc = append(doc, extra...)
	doc = append(doc, bson.E{Key: "errmsg", Value: msg})
	raw, err := bson.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return mongo.BulkWriteError{WriteError: mongo.WriteError{Index: index, Code: code, Message: msg, Raw: raw}}
}

// What MongoDB 4.4+ says for a duplicate key: the index in the message and
// keyPattern and keyValue in the reply.
func dupMongo(index int, field string, value any) mongo.BulkWriteError {
	ixName := field + "_1"
	if field == "_id" {
		ixName = "_id_"
	}
	return writeErr(index, 11000,
		fmt.Sprintf("E11000 duplicate key error collection: db.comments index: %s dup key: { %s: %q }", ixName, field, value),
		bson.E{Key: "keyPattern", Value: bson.D{{Key: field, Value: int32(1)}}},
		bson.E{Key: "keyValue", Value: bson.D{{Key: field, Value: value}}})
}

// What FerretDB 1.24 says (handler/msg_insert.go): nothing about the key.
func dupFerret(index int) mongo.BulkWriteError {
	return writeErr(index, 11000, "E11000 duplicate key error collection: db.comments")
}

// How an InsertMany error is read, for every kind of write error: each
// document's fate, and that the documents after a failed one are counted
// as stored.
func TestClassify(t *testing.T) {
	d := docs(4)
	bwe := func(wes ...mongo.BulkWriteError) error {
		return mongo.BulkWriteException{WriteErrors: wes}
	}
	type classifyCase struct {
		name     string
		err      error
		want     Result // Rejected compared by length
		rejected []int
		pending  []int
		unsure   []int
	}
	tests := []classifyCase{
		{"success", nil, Result{Inserted: 4}, nil, nil, nil},
		{"duplicate _id (MongoDB keyPattern)", bwe(dupMongo(0, "_id", d[0].ID), dupMongo(3, "_id", d[3].ID)),
			Result{Inserted: 2, Duplicates: 2}, nil, nil, nil},
		{"duplicate on another unique index (MongoDB)", bwe(dupMongo(1, "address", "A")),
			Result{Inserted: 3}, []int{1}, nil, nil},
		{"duplicate, message names _id_ only", bwe(writeErr(2, 11000, "E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: \"x\" }")),
			Result{Inserted: 3, Duplicates: 1}, nil, nil, nil},
		{"duplicate, message names another index", bwe(writeErr(2, 11000, "E11000 duplicate key error collection: db.c index: name_1 dup key: { name: \"x\" }")),
			Result{Inserted: 3}, []int{2}, nil, nil},
		{"duplicate, no key named (FerretDB)", bwe(dupFerret(1)), Result{Inserted: 3}, nil, nil, []int{1}},
		{"legacy duplicate code 11001 on _id", bwe(writeErr(0, 11001, "E11001 duplicate key", bson.E{Key: "keyValue", Value: bson.D{{Key: "_id", Value: "x"}}})),
			Result{Inserted: 3, Duplicates: 1}, nil, nil, nil},
		{"document validation failure", bwe(writeErr(1, 121, "Document failed validation")), Result{Inserted: 3}, []int{1}, nil, nil},
		{"document too large", bwe(writeErr(2, 10334, "object to insert too large")), Result{Inserted: 3}, []int{2}, nil, nil},
		{"bad value", bwe(writeErr(0, 2, "bad value")), Result{Inserted: 3}, []int{0}, nil, nil},
		{"mixed: dup _id, rejected, transient", bwe(dupMongo(0, "_id", d[0].ID), writeErr(1, 121, "invalid"), writeErr(2, 11602, "interrupted")),
			Result{Inserted: 1, Duplicates: 1}, []int{1}, []int{2}, nil},
		{"write concern error", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64, Message: "timeout"},
			WriteErrors: []mongo.BulkWriteError{dupMongo(1, "_id", d[1].ID)}}, Result{}, nil, []int{0, 1, 2, 3}, nil},
		{"index out of range", bwe(dupMongo(9, "_id", "x")), Result{}, nil, []int{0, 1, 2, 3}, nil},
		{"network error", errors.New("connection reset"), Result{}, nil, []int{0, 1, 2, 3}, nil},
		{"unknown code is retried, never lost", bwe(writeErr(3, 99999, "new server error")), Result{Inserted: 3}, nil, []int{3}, nil},
	}
	for code, name := range TransientCodes {
		tests = append(tests, classifyCase{"transient " + name, bwe(writeErr(1, code, name)), Result{Inserted: 3}, nil, []int{1}, nil})
	}
	for code, name := range PermanentCodes {
		tests = append(tests, classifyCase{"permanent " + name, bwe(writeErr(2, code, name)), Result{Inserted: 3}, []int{2}, nil, nil})
	}
	ids := func(idx []int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, d[i].ID)
		}
		return out
	}
	docIDs := func(ds []Document) []string {
		out := []string{}
		for _, x := range ds {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, pending, unsure, err := classify(d, tt.err)
			if !sameCounts(res, Result{Inserted: tt.want.Inserted, Duplicates: tt.want.Duplicates, Rejected: make([]Rejected, len(tt.rejected))}) {
				t.Errorf("result %+v, want %+v and %d rejected", res, tt.want, len(tt.rejected))
			}
			var rej []Document
			for _, r := range res.Rejected {
				rej = append(rej, r.Doc)
				if r.Err == nil {
					t.Errorf("rejected %s without a reason", r.Doc.ID)
				}
			}
			if got, want := fmt.Sprint(docIDs(rej)), fmt.Sprint(ids(tt.rejected)); got != want {
				t.Errorf("rejected %s, want %s", got, want)
			}
			if got, want := fmt.Sprint(docIDs(pending)), fmt.Sprint(ids(tt.pending)); got != want {
				t.Errorf("pending %s, want %s", got, want)
			}
			if got, want := fmt.Sprint(docIDs(unsure)), fmt.Sprint(ids(tt.unsure)); got != want {
				t.Errorf("unsure %s, want %s", got, want)
			}
			if (err != nil) != (len(tt.pending) > 0) {
				t.Errorf("err = %v, want an error exactly when something is pending", err)
			}
		})
	}
}

func TestCodeListsAreDisjoint(t *testing.T) {
	for code := range PermanentCodes {
		if _, ok := TransientCodes[code]; ok || isDuplicateCode(code) {
			t.Errorf("code %d is listed twice", code)
		}
	}
}
