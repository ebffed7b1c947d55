package stored_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/schemas/stored"
)

func TestIndexNamesAreMongoDefaults(t *testing.T) {
	want := []string{"created_at_-1__id_-1", "post_id_1_created_at_-1__id_-1", "name_1_created_at_-1__id_-1",
		"post_id_1_name_1_created_at_-1__id_-1"}
	var got []string
	for _, ix := range stored.Indexes() {
		got = append(got, ix.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("index names %q, want %q", got, want)
	}
}

// Every field of Document has a Field constant naming its bson tag.
func TestFieldConstantsMatchTags(t *testing.T) {
	consts := map[string]bool{stored.FieldID: true, stored.FieldPostID: true, stored.FieldName: true,
		stored.FieldText: true, stored.FieldAddress: true, stored.FieldCreatedAt: true, stored.FieldIngestedAt: true,
		stored.FieldKafka: true, stored.FieldSchemaID: true, stored.FieldTraceID: true}
	typ := reflect.TypeFor[stored.Document]()
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("bson"), ",")
		if !consts[tag] {
			t.Errorf("Document.%s (bson %q) has no Field constant", typ.Field(i).Name, tag)
		}
		delete(consts, tag)
	}
	for c := range consts {
		t.Errorf("Field constant %q names no Document field", c)
	}
}
