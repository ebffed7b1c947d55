package store_test

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/commentflow/commentflow/gateway/internal/store"
	"github.com/commentflow/commentflow/schemas/stored"
)

// Every query shape the gateway can issue — each combination of the
// fields of Filter, with and without a keyset position, sorted in the
// list order — is served by one declared index by the prefix rule: the
// index starts with exactly the query's equality fields (in any order),
// followed by the sort keys, and the query's range conditions are only on
// the sort keys. FerretDB ignores indexes, so no other test would notice a
// filter without one: a new Filter field that FilterDoc uses fails here
// until stored.Indexes serves it.
func TestEveryQueryHasAnIndex(t *testing.T) {
	typ := reflect.TypeFor[store.Filter]()
	n := typ.NumField()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for mask := range 1 << n {
		var f store.Filter
		v := reflect.ValueOf(&f).Elem()
		var set []string
		for i := range n {
			if mask&(1<<i) == 0 {
				continue
			}
			set = append(set, typ.Field(i).Name)
			switch fv := v.Field(i); fv.Interface().(type) {
			case string:
				fv.SetString("x")
			case *time.Time:
				fv.Set(reflect.ValueOf(&at))
			default:
				t.Fatalf("Filter.%s is a %s: teach this test to set it", typ.Field(i).Name, fv.Type())
			}
		}
		for _, after := range []*store.Position{nil, {CreatedAt: at, ID: "id"}} {
			name := strings.Join(set, "+")
			if after != nil {
				name += "+keyset"
			}
			doc := store.FilterDoc(f, after)
			eq, rng := shape(t, doc)
			if ix, ok := servedBy(eq, rng); ok {
				t.Logf("%-30s eq %v range %v: %s", name, eq, rng, ix)
			} else {
				t.Errorf("query %s (equality on %v, range on %v, sorted by %v) has no index in stored.Indexes(): filter %v",
					name, eq, rng, stored.Sort, doc)
			}
		}
	}
}

// shape reads a filter document: the fields compared with $eq and the
// fields with any other condition (including inside $or).
func shape(t *testing.T, doc bson.D) (eq, rng []string) {
	t.Helper()
	for _, e := range doc {
		switch {
		case e.Key == "$or" || e.Key == "$and":
			for _, sub := range e.Value.(bson.A) { // every condition in a branch narrows a range
				e2, r2 := shape(t, sub.(bson.D))
				rng = append(append(rng, e2...), r2...)
			}
		case strings.HasPrefix(e.Key, "$"):
			t.Fatalf("filter operator %s: teach this test how an index serves it", e.Key)
		default:
			cond, ok := e.Value.(bson.D)
			if ok && len(cond) == 1 && cond[0].Key == "$eq" {
				eq = append(eq, e.Key)
			} else {
				rng = append(rng, e.Key)
			}
		}
	}
	sort.Strings(eq)
	return eq, dedupe(rng)
}

func dedupe(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// servedBy finds the declared index serving equality on eq, conditions on
// rng and the sort stored.Sort.
func servedBy(eq, rng []string) (string, bool) {
	sortFields := map[string]bool{}
	for _, k := range stored.Sort {
		sortFields[k.Field] = true
	}
	for _, f := range rng {
		if !sortFields[f] {
			return "", false // a range on a non-sort field needs its own design
		}
	}
	for _, ix := range stored.Indexes() {
		if len(ix.Keys) < len(eq)+len(stored.Sort) {
			continue
		}
		var prefix []string
		for _, k := range ix.Keys[:len(eq)] {
			prefix = append(prefix, k.Field)
		}
		sort.Strings(prefix)
		if !slices.Equal(prefix, eq) {
			continue
		}
		rest := ix.Keys[len(eq) : len(eq)+len(stored.Sort)]
		same, reversed := true, true
		for i, k := range stored.Sort {
			same = same && rest[i] == k
			reversed = reversed && rest[i] == stored.Key{Field: k.Field, Dir: -k.Dir}
		}
		if same || reversed {
			return ix.Name, true
		}
	}
	return "", false
}
