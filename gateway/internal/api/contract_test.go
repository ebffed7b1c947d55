package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/schemas"
	"github.com/commentflow/commentflow/schemas/stored"
)

// The contract chain, checked both ways: every field of the event
// (comment.avsc) is stored and served by the API, and everything the API
// serves as a Comment is in the stored document. Without it, a field added
// to the Avro schema could be dropped silently on its way to the API.
//
// Where a name differs along the chain, storedName says so; where a field
// deliberately stops somewhere, the exclusions below say where and why.
var (
	// storedName maps an Avro field (or API property) to its stored field,
	// where the names differ.
	storedName = map[string]string{"id": stored.FieldID}

	// notStored: Avro fields the consumer deliberately does not store.
	notStored = map[string]string{}

	// notServed: Avro fields stored but deliberately not served by the API.
	notServed = map[string]string{}

	// notFromAvro: stored fields that no Avro field carries, added on the
	// stored side, each with where it comes from.
	notFromAvro = map[string]string{
		stored.FieldIngestedAt: "the consumer's clock when it stored the comment",
		stored.FieldKafka:      "the record's topic partition and offset",
		stored.FieldSchemaID:   "the registry ID in the record's Confluent framing",
		// The trace ID travels in the record's headers (W3C traceparent,
		// put there by the producer's kotel hooks), not in the Avro
		// body: the consumer stores the trace it continued, and the API
		// serves it as Comment.trace_id.
		stored.FieldTraceID: "the record's traceparent header",
	}
)

func TestContractChain(t *testing.T) {
	avroFields := avroFieldNames(t, schemas.CommentSchemaText)
	storedFields := storedFieldNames()
	apiProps := apiCommentProperties(t)
	checkChain(t, avroFields, storedFields, apiProps)
}

func checkChain(t testing.TB, avroFields, storedFields, apiProps []string) {
	t.Helper()
	toStored := func(f string) string {
		if s, ok := storedName[f]; ok {
			return s
		}
		return f
	}
	for _, f := range avroFields {
		if _, ok := notStored[f]; !ok && !slices.Contains(storedFields, toStored(f)) {
			t.Errorf("Avro field %q has no stored field %q in schemas/stored.Document (nor an exclusion in notStored)", f, toStored(f))
		}
		if _, ok := notServed[f]; !ok && !slices.Contains(apiProps, f) {
			t.Errorf("Avro field %q has no property in openapi.yaml's Comment schema (nor an exclusion in notServed)", f)
		}
	}
	for _, p := range apiProps {
		if !slices.Contains(storedFields, toStored(p)) {
			t.Errorf("openapi.yaml's Comment property %q is not in the stored document (stored field %q)", p, toStored(p))
		}
	}
	for _, f := range storedFields {
		if _, ok := notFromAvro[f]; ok {
			continue
		}
		if !slices.ContainsFunc(avroFields, func(a string) bool { return toStored(a) == f }) {
			t.Errorf("stored field %q comes from no Avro field (nor is it listed in notFromAvro, with its source)", f)
		}
	}
}

func avroFieldNames(t testing.TB, text string) []string {
	t.Helper()
	var rec struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range rec.Fields {
		out = append(out, f.Name)
	}
	return out
}

func storedFieldNames() []string {
	typ := reflect.TypeFor[stored.Document]()
	var out []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("bson"), ",")
		out = append(out, name)
	}
	return out
}

func apiCommentProperties(t testing.TB) []string {
	t.Helper()
	spec, err := api.LoadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ref, ok := spec.Doc.Components.Schemas["Comment"]
	if !ok || ref.Value == nil {
		t.Fatal("openapi.yaml has no Comment schema")
	}
	var out []string
	for p := range ref.Value.Properties {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// The chain test catches what it is for: an Avro field that reaches
// neither the store nor the API, and an API property with nothing stored.
func TestContractChainCatchesDrift(t *testing.T) {
	avroFields := avroFieldNames(t, schemas.CommentSchemaText)
	storedFields := storedFieldNames()
	apiProps := apiCommentProperties(t)
	cases := []struct {
		name                     string
		avro, storedF, apiFields []string
	}{
		{"unmapped Avro field", append(slices.Clone(avroFields), "mood"), storedFields, apiProps},
		{"API property not stored", avroFields, storedFields, append(slices.Clone(apiProps), "likes")},
		{"stored field dropped", avroFields, slices.DeleteFunc(slices.Clone(storedFields), func(s string) bool { return s == "address" }), apiProps},
		{"stored field from nowhere", avroFields, append(slices.Clone(storedFields), "span_id"), apiProps},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			checkChain(rec, tc.avro, tc.storedF, tc.apiFields)
			if len(rec.errs) == 0 {
				t.Fatal("drift not noticed")
			}
			t.Logf("noticed: %s", rec.errs[0])
		})
	}
}

type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
