package schemas_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/commentflow/commentflow/schemas"
)

// The cases of issue 12, "Found": records that were stored although they
// break a promise (one document per comment, RFC 3339 dates, text).

func TestValidateCanonicalisesUUIDs(t *testing.T) {
	c := sample()
	c.ID = strings.ToUpper(c.ID)
	c.PostID = strings.ToUpper(c.PostID)
	if err := schemas.Validate(&c); err != nil {
		t.Fatalf("upper-case UUIDs are the same UUIDs (RFC 9562): %v", err)
	}
	want := sample()
	if c.ID != want.ID || c.PostID != want.PostID {
		t.Errorf("not canonicalised: id %q post_id %q, want %q %q", c.ID, c.PostID, want.ID, want.PostID)
	}
}

func TestDecodeCanonicalisesUUIDs(t *testing.T) {
	ctx := context.Background()
	_, cl, id := registered(t)
	c := sample()
	c.ID, c.PostID = strings.ToUpper(c.ID), strings.ToUpper(c.PostID)
	b, err := schemas.NewEncoder(id).Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := schemas.NewDecoder(cl).Decode(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := sample(); got.ID != want.ID || got.PostID != want.PostID {
		t.Errorf("decoded id %q post_id %q, want the lower-case form", got.ID, got.PostID)
	}
}

func TestValidateRefuses(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name  string
		mod   func(*schemas.Comment)
		field string // the reason must name it
	}{
		{"year 10000", func(c *schemas.Comment) { c.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "created_at"},
		{"max int64 ms", func(c *schemas.Comment) { c.CreatedAt = time.UnixMilli(math.MaxInt64) }, "created_at"},
		{"year 0", func(c *schemas.Comment) { c.CreatedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }, "created_at"},
		{"min int64 ms", func(c *schemas.Comment) { c.CreatedAt = time.UnixMilli(math.MinInt64) }, "created_at"},
		{"0001-01-01 (Go's zero time)", func(c *schemas.Comment) { c.CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) }, "created_at"},
		{"before 1970", func(c *schemas.Comment) { c.CreatedAt = time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC) }, "created_at"},
		{"too far in the future", func(c *schemas.Comment) { c.CreatedAt = now.Add(schemas.DefaultMaxFutureSkew + time.Minute) }, "created_at"},
		{"text invalid utf-8", func(c *schemas.Comment) { c.Text = "ab\xffcd" }, "text"},
		{"text NUL", func(c *schemas.Comment) { c.Text = "a\x00b" }, "text"},
		{"text escape", func(c *schemas.Comment) { c.Text = "a\x1b[31mred" }, "text"},
		{"text DEL", func(c *schemas.Comment) { c.Text = "a\x7f" }, "text"},
		{"text C1 control", func(c *schemas.Comment) { c.Text = "a\u0085b" }, "text"},
		{"text too long", func(c *schemas.Comment) { c.Text = strings.Repeat("é", schemas.MaxTextLen+1) }, "text"},
		{"name invalid utf-8", func(c *schemas.Comment) { c.Name = "\xc3" }, "name"},
		{"name NUL", func(c *schemas.Comment) { c.Name = "Ada\x00" }, "name"},
		{"name newline", func(c *schemas.Comment) { c.Name = "Ada\nLovelace" }, "name"},
		{"name too long", func(c *schemas.Comment) { c.Name = strings.Repeat("a", schemas.MaxNameLen+1) }, "name"},
		{"address invalid utf-8", func(c *schemas.Comment) { c.Address = "\xff" }, "address"},
		{"address tab", func(c *schemas.Comment) { c.Address = "1\tMain St" }, "address"},
		{"address too long", func(c *schemas.Comment) { c.Address = strings.Repeat("a", schemas.MaxAddressLen+1) }, "address"},
		{"id not a uuid", func(c *schemas.Comment) { c.ID = "42" }, "id"},
		{"post_id braces", func(c *schemas.Comment) { c.PostID = "{5f0c2a9e-3b1d-4c6e-8a7f-1e2d3c4b5a69}" }, "post_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			tc.mod(&c)
			err := schemas.Validate(&c)
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("got %v, want an invalid comment", err)
			}
			de, ok := errors.AsType[*schemas.DecodeError](err)
			if !ok || !strings.HasPrefix(de.Err.Error(), tc.field+" ") {
				t.Errorf("reason %q does not start with the field %q", err, tc.field)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name string
		mod  func(*schemas.Comment)
	}{
		{"sample", func(*schemas.Comment) {}},
		{"text with newline and tab", func(c *schemas.Comment) { c.Text = "line 1\n\tline 2" }},
		{"unicode", func(c *schemas.Comment) { c.Name, c.Text = "Zoë 李", "ünïcödé 🎉" }},
		{"max lengths in characters", func(c *schemas.Comment) {
			c.Name = strings.Repeat("é", schemas.MaxNameLen)
			c.Text = strings.Repeat("é", schemas.MaxTextLen)
			c.Address = strings.Repeat("é", schemas.MaxAddressLen)
		}},
		{"empty name and address", func(c *schemas.Comment) { c.Name, c.Address = "", "" }},
		{"1970", func(c *schemas.Comment) { c.CreatedAt = time.UnixMilli(1).UTC() }},
		{"within skew", func(c *schemas.Comment) { c.CreatedAt = now.Add(schemas.DefaultMaxFutureSkew - time.Minute) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			tc.mod(&c)
			if err := schemas.Validate(&c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidatorSkewIsConfigurable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := schemas.Validator{MaxFutureSkew: time.Hour, Now: func() time.Time { return now }}
	c := sample()
	c.CreatedAt = now.Add(59 * time.Minute)
	if err := v.Validate(&c); err != nil {
		t.Fatalf("59 minutes ahead with a 1h skew: %v", err)
	}
	c.CreatedAt = now.Add(61 * time.Minute)
	if err := v.Validate(&c); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("61 minutes ahead with a 1h skew: got %v", err)
	}
}

func TestDecodeRefusesTrailingBytes(t *testing.T) {
	ctx := context.Background()
	_, cl, id := registered(t)
	b := encodedSample(t, id)
	_, _, err := schemas.NewDecoder(cl).Decode(ctx, append(b, 0, 1, 2))
	if !errors.Is(err, schemas.ErrAvroDecode) {
		t.Fatalf("record with 3 trailing bytes: got %v, want avro_decode", err)
	}
}

// The contract's numbers are written in comment.avsc's field docs and the
// README's "What a valid comment is" table; they must be the ones
// Validate uses.
func TestContractLimitsAreDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "**What a valid comment is.**")
	if !ok {
		t.Fatal(`README has no "What a valid comment is" section`)
	}
	section, _, _ = strings.Cut(section, "\n\n**")
	row := func(field string) string {
		for line := range strings.Lines(section) {
			if strings.HasPrefix(line, "| `"+field+"` |") {
				return line
			}
		}
		t.Errorf("README's contract table has no row for %s", field)
		return ""
	}
	docs := map[string]string{}
	for _, f := range schemas.CommentSchema().(*avro.RecordSchema).Fields() {
		docs[f.Name()] = f.Doc()
	}
	minDate := schemas.MinCreatedAt.Format(time.RFC3339)
	skew := schemas.DefaultMaxFutureSkew
	for field, want := range map[string][]string{
		"name":       {fmt.Sprintf("at most %d characters", schemas.MaxNameLen)},
		"text":       {fmt.Sprintf("at most %d characters", schemas.MaxTextLen)},
		"address":    {fmt.Sprintf("at most %d characters", schemas.MaxAddressLen)},
		"created_at": {minDate},
	} {
		for _, w := range want {
			if !strings.Contains(docs[field], w) {
				t.Errorf("comment.avsc: %s's doc %q does not say %q", field, docs[field], w)
			}
			if r := row(field); !strings.Contains(r, w) {
				t.Errorf("README: the %s row %q does not say %q", field, r, w)
			}
		}
	}
	if w := fmt.Sprintf("(%g hour unless configured)", skew.Hours()); !strings.Contains(docs["created_at"], w) {
		t.Errorf("comment.avsc: created_at's doc %q does not say %q", docs["created_at"], w)
	}
	short := strings.TrimSuffix(strings.TrimSuffix(skew.String(), "0s"), "0m") // 1h0m0s -> 1h
	if w := "`CREATED_AT_MAX_SKEW` (default " + short + ")"; !strings.Contains(row("created_at"), w) {
		t.Errorf("README: the created_at row does not say %q", w)
	}
}
