package schemas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commentflow/commentflow/schemas"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, and
// every failure must be one of the typed, classed errors a consumer routes.
// The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	ctx := context.Background()
	_, cl, id := registered(f)
	good := encodedSample(f, id)
	f.Add(good)
	f.Add(good[:5])
	f.Add(schemas.Frame(2, good[5:]))
	f.Add([]byte{})

	dec := schemas.NewDecoder(cl)
	sentinels := []error{schemas.ErrBadFraming, schemas.ErrUnknownSchema, schemas.ErrAvroDecode, schemas.ErrInvalid}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotID, err := dec.Decode(ctx, b)
		if err == nil {
			if gotID != id {
				t.Fatalf("decoded with schema %d, only %d is registered", gotID, id)
			}
			if verr := schemas.Validate(&got); verr != nil {
				t.Fatalf("Decode accepted an invalid comment: %v", verr)
			}
			return
		}
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error of class %q matches no poison sentinel: %v", de.Class, err)
	})
}
