package schemas_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/commentflow/commentflow/schemas"
)

// v2 adds an optional field with a default: BACKWARD compatible.
var v2Schema = strings.Replace(schemas.CommentSchemaText, `"fields": [`, `"fields": [
    {"name": "language", "type": ["null", "string"], "default": null, "doc": "ISO 639-1 language of the text, when known."},`, 1)

type commentV2 struct {
	schemas.Comment
	Language *string `avro:"language"`
}

func newRegistry(t testing.TB) (*srfake.Registry, *sr.Client) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl
}

func sample() schemas.Comment {
	return schemas.Comment{
		ID:        "01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e1f",
		PostID:    "5f0c2a9e-3b1d-4c6e-8a7f-1e2d3c4b5a69",
		Name:      "Ada Lovelace",
		Text:      "The engine weaves algebraic patterns just as the loom weaves flowers.",
		Address:   "12 St James's Square, London",
		CreatedAt: time.UnixMilli(1764240000123).UTC(),
	}
}

func TestGeneratedTypeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH: cannot run avrogen")
	}
	out := filepath.Join(t.TempDir(), "comment_gen.go")
	cmd := exec.CommandContext(t.Context(), "go", "tool", "avrogen", "-pkg", "schemas", "-o", out, "-tags", "json:snake", "comment.avsc")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("avrogen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("comment_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("comment_gen.go is stale: run `go generate ./...` in schemas/ and commit the result")
	}
	if !bytes.Contains(got, []byte("DO NOT EDIT")) {
		t.Fatal("comment_gen.go lacks its DO NOT EDIT marker")
	}
}

func TestSchemaDocumentsEveryField(t *testing.T) {
	rs := schemas.CommentSchema().(*avro.RecordSchema)
	if rs.Doc() == "" {
		t.Error("record Comment has no doc")
	}
	want := []string{"id", "post_id", "name", "text", "address", "created_at"}
	var got []string
	for _, f := range rs.Fields() {
		got = append(got, f.Name())
		if f.Doc() == "" {
			t.Errorf("field %s has no doc", f.Name())
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("fields %v, want %v", got, want)
	}
	logical := map[string]avro.LogicalType{"id": avro.UUID, "post_id": avro.UUID, "created_at": avro.TimestampMillis}
	for _, f := range rs.Fields() {
		lt, ok := logical[f.Name()]
		if !ok {
			continue
		}
		ls, _ := f.Type().(avro.LogicalTypeSchema)
		if ls == nil || ls.Logical() == nil || ls.Logical().Type() != lt {
			t.Errorf("field %s: want logicalType %s", f.Name(), lt)
		}
	}
}

func TestRegisterIsIdempotentAndSetsBackward(t *testing.T) {
	ctx := context.Background()
	_, cl := newRegistry(t)
	r := schemas.NewRegistry(cl)

	if _, err := r.Lookup(ctx); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("lookup before registration: %v, want a not-registered error", err)
	}
	id1, err := r.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := schemas.NewRegistry(cl).Register(ctx) // a restarted producer
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("second registration gave id %d, first %d", id2, id1)
	}
	versions, err := cl.SubjectVersions(ctx, schemas.Subject)
	if err != nil || len(versions) != 1 {
		t.Fatalf("versions %v (%v), want exactly one", versions, err)
	}
	id3, err := r.Lookup(ctx)
	if err != nil || id3 != id1 {
		t.Fatalf("lookup: %d %v, want %d", id3, err, id1)
	}
	res := cl.Compatibility(ctx, schemas.Subject)
	if len(res) != 1 || res[0].Err != nil || res[0].Level != sr.CompatBackward {
		t.Fatalf("compatibility %+v, want BACKWARD", res)
	}
}

func TestEvolution(t *testing.T) {
	ctx := context.Background()
	_, cl := newRegistry(t)
	r := schemas.NewRegistry(cl)
	id1, err := r.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := r.WithSchema(v2Schema)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := r2.Register(ctx)
	if err != nil {
		t.Fatalf("register compatible v2: %v", err)
	}
	if id2 == id1 {
		t.Fatal("v2 got v1's id")
	}

	// A v1 record and a v2 record both decode into the current type.
	c1 := sample()
	b1, err := schemas.NewEncoder(id1).Encode(&c1)
	if err != nil {
		t.Fatal(err)
	}
	lang := "en"
	c2 := commentV2{Comment: sample(), Language: &lang}
	c2.ID = "01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e20"
	body, err := avro.Marshal(avro.MustParse(v2Schema), c2)
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(cl)
	for _, tc := range []struct {
		b    []byte
		id   int
		want schemas.Comment
	}{{b1, id1, c1}, {schemas.Frame(id2, body), id2, c2.Comment}} {
		got, gotID, err := dec.Decode(ctx, tc.b)
		if err != nil {
			t.Fatalf("decode schema %d: %v", tc.id, err)
		}
		if gotID != tc.id || !equal(got, tc.want) {
			t.Fatalf("decode schema %d: got %+v (id %d), want %+v", tc.id, got, gotID, tc.want)
		}
	}

	incompatible := map[string]struct{ schema, field string }{
		"required field added": {strings.Replace(schemas.CommentSchemaText, `"fields": [`, `"fields": [
    {"name": "score", "type": "int", "doc": "x"},`, 1), "score"},
		"type changed": {strings.Replace(schemas.CommentSchemaText,
			`{"type": "long", "logicalType": "timestamp-millis"}`, `"string"`, 1), "created_at"},
	}
	for name, tc := range incompatible {
		t.Run(name, func(t *testing.T) {
			bad, err := r.WithSchema(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			_, err = bad.Register(ctx)
			var ie *schemas.IncompatibleError
			if !errors.As(err, &ie) {
				t.Fatalf("register: %v, want an IncompatibleError", err)
			}
			if !strings.Contains(err.Error(), `field "`+tc.field+`"`) {
				t.Fatalf("error %q does not name field %q", err, tc.field)
			}
			if v, _ := cl.SubjectVersions(ctx, schemas.Subject); len(v) != 2 {
				t.Fatalf("versions after refusal: %v, want the 2 compatible ones", v)
			}
		})
	}
}

func equal(a, b schemas.Comment) bool {
	return a.ID == b.ID && a.PostID == b.PostID && a.Name == b.Name && a.Text == b.Text &&
		a.Address == b.Address && a.CreatedAt.Equal(b.CreatedAt)
}

func TestWireFormat(t *testing.T) {
	c := sample()
	b, err := schemas.NewEncoder(0x01020304).Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:5], []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("header % x, want magic 0 then big-endian id", b[:5])
	}
	raw, err := avro.Marshal(schemas.CommentSchema(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[5:], raw) {
		t.Fatal("body is not the plain Avro binary of the comment")
	}
	if got, _ := schemas.NewEncoder(7).Append([]byte("keep"), &c); !bytes.HasPrefix(got, []byte("keep\x00\x00\x00\x00\x07")) {
		t.Fatalf("Append did not append: % x", got[:12])
	}
}

func TestOutOfRangeSchemaIDPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int
		fn   func(int)
	}{
		{"NewEncoder negative", -1, func(id int) { schemas.NewEncoder(id) }},
		{"NewEncoder over int32", math.MaxInt32 + 1, func(id int) { schemas.NewEncoder(id) }},
		{"Frame negative", -1, func(id int) { schemas.Frame(id, nil) }},
		{"Frame over int32", math.MaxUint32 + 1, func(id int) { schemas.Frame(id, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("schema ID %d was accepted; it does not fit the 4-byte header", tc.id)
				}
			}()
			tc.fn(tc.id)
		})
	}
	if got := schemas.NewEncoder(math.MaxInt32).SchemaID(); got != math.MaxInt32 {
		t.Fatalf("largest ID round-trips as %d", got)
	}
}

func TestDecodeErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	reg, cl, id := registered(t)
	enc := schemas.NewEncoder(id)
	encode := func(mod func(*schemas.Comment)) []byte {
		c := sample()
		mod(&c)
		b, err := enc.Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := encode(func(*schemas.Comment) {})
	wrongMagic := append([]byte{1}, good[1:]...)
	jsonSchema, _, err := reg.RegisterSchema("other-value", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, schemas.ErrBadFraming},
		{"short", []byte{0, 0, 1}, schemas.ErrBadFraming},
		{"wrong magic", wrongMagic, schemas.ErrBadFraming},
		{"plain json", []byte(`{"id":"x"}`), schemas.ErrBadFraming},
		{"unknown id", schemas.Frame(9999, good[5:]), schemas.ErrUnknownSchema},
		{"truncated avro", good[:len(good)-4], schemas.ErrAvroDecode},
		{"header only", good[:5], schemas.ErrAvroDecode},
		{"not an avro schema", schemas.Frame(jsonSchema, good[5:]), schemas.ErrAvroDecode},
		{"empty text", encode(func(c *schemas.Comment) { c.Text = "  " }), schemas.ErrInvalid},
		{"id not a uuid", encode(func(c *schemas.Comment) { c.ID = "42" }), schemas.ErrInvalid},
		{"post_id not a uuid", encode(func(c *schemas.Comment) { c.PostID = "{5f0c2a9e-3b1d-4c6e-8a7f-1e2d3c4b5a69}" }), schemas.ErrInvalid},
		{"created_at zero", encode(func(c *schemas.Comment) { c.CreatedAt = time.UnixMilli(0) }), schemas.ErrInvalid},
	}
	dec := schemas.NewDecoder(cl)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dec.Decode(ctx, tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if schemas.Retryable(err) {
				t.Fatalf("%v must not be retryable", err)
			}
			var de *schemas.DecodeError
			if !errors.As(err, &de) || de.Class == "" {
				t.Fatalf("%T is not a classed *DecodeError", err)
			}
		})
	}
	if _, _, err := dec.Decode(ctx, good); err != nil {
		t.Fatalf("valid record: %v", err)
	}
}

func TestDecodeRegistryUnavailableIsRetryable(t *testing.T) {
	ctx := context.Background()
	reg, cl, id := registered(t)
	b := encodedSample(t, id)

	reg.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, `{"error_code":50001,"message":"store down"}`, http.StatusInternalServerError)
		return true
	})
	dec := schemas.NewDecoder(cl)
	_, _, err := dec.Decode(ctx, b)
	if !errors.Is(err, schemas.ErrRegistryUnavailable) || !schemas.Retryable(err) {
		t.Fatalf("registry down: %v, want retryable ErrRegistryUnavailable", err)
	}
	reg.ClearInterceptors()
	if _, _, err := dec.Decode(ctx, b); err != nil {
		t.Fatalf("registry back: %v (a transient failure must not be cached)", err)
	}

	reg.Close() // gone entirely; the cached schema still decodes
	if _, _, err := dec.Decode(ctx, b); err != nil {
		t.Fatalf("cached schema with the registry gone: %v", err)
	}
}

func TestUnknownIDsAreAskedOnce(t *testing.T) {
	ctx := context.Background()
	reg, cl := newRegistry(t)
	var fetches atomic.Int32
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
		}
		return false
	})
	dec := schemas.NewDecoder(cl)
	poison := schemas.Frame(777, []byte{2, 'x'})
	for range 50 {
		if _, _, err := dec.Decode(ctx, poison); !errors.Is(err, schemas.ErrUnknownSchema) {
			t.Fatalf("got %v, want ErrUnknownSchema", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d registry lookups for 50 records with one unknown id, want 1", n)
	}
}

func TestDecodeFetchesEachSchemaOnce(t *testing.T) {
	ctx := context.Background()
	reg, cl, id := registered(t)
	var fetches atomic.Int32
	release := make(chan struct{})
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
			<-release // hold the request so every caller piles up behind it
		}
		return false
	})
	c := sample()
	b, _ := schemas.NewEncoder(id).Encode(&c)
	dec := schemas.NewDecoder(cl)

	const callers = 32
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, _, err := dec.Decode(ctx, b)
			errs <- err
		})
	}
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the other callers reach the flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if _, _, err := dec.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d registry fetches for one schema id, want 1", n)
	}
}

// registered starts a fake registry and registers the comment schema in it,
// returning the fake, a client of it and the schema's ID.
// encodedSample is sample() encoded with the schema id.
func encodedSample(t testing.TB, id int) []byte {
	t.Helper()
	c := sample()
	b, err := schemas.NewEncoder(id).Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func registered(t testing.TB) (*srfake.Registry, *sr.Client, int) {
	t.Helper()
	reg, cl := newRegistry(t)
	id, err := schemas.NewRegistry(cl).Register(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl, id
}
