package cursor_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/gateway/internal/cursor"
)

func newCodec(t testing.TB, secret string) *cursor.Codec {
	t.Helper()
	c, err := cursor.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	at := time.Date(2025, 11, 27, 15, 4, 5, 123e6, time.UTC)
	for _, p := range []cursor.Position{
		{CreatedAt: at, ID: "01935f4e-7a2b-7c3d-8e4f-5a6b7c8d9e0f"},
		{CreatedAt: at, ID: "01935F4E-7A2B-7C3D-8E4F-5A6B7C8D9E0F"}, // not canonical: kept as a string
		{CreatedAt: at, ID: "not-a-uuid"},
		{CreatedAt: at, ID: ""},
		{CreatedAt: time.UnixMilli(0).UTC(), ID: "x"},
		{CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC), ID: "apollo"},
		{CreatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), ID: strings.Repeat("é", 100)},
	} {
		tok := c.Encode(p, "scope")
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not URL-safe", tok)
		}
		got, err := c.Decode(tok, "scope")
		if err != nil {
			t.Fatalf("decode %+v: %v", p, err)
		}
		if !got.CreatedAt.Equal(p.CreatedAt) || got.ID != p.ID || got.CreatedAt.Location() != time.UTC {
			t.Errorf("round trip %+v -> %+v", p, got)
		}
	}
}

func TestCanonicalUUIDIsCompact(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	p := cursor.Position{CreatedAt: time.Now(), ID: "01935f4e-7a2b-7c3d-8e4f-5a6b7c8d9e0f"}
	if tok := c.Encode(p, ""); len(tok) > 70 {
		t.Errorf("cursor for a UUID is %d characters", len(tok))
	}
}

func TestSubMillisecondIsTruncated(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	at := time.Date(2025, 1, 1, 0, 0, 0, 1_999_999, time.UTC)
	got, err := c.Decode(c.Encode(cursor.Position{CreatedAt: at, ID: "a"}, ""), "")
	if err != nil || !got.CreatedAt.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("got %v, %v", got.CreatedAt, err)
	}
}

// TestEveryEditIsDetected: changing any single byte of a token never
// yields a valid cursor.
func TestEveryEditIsDetected(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	for _, id := range []string{"01935f4e-7a2b-7c3d-8e4f-5a6b7c8d9e0f", "some-id"} {
		raw, _ := base64.RawURLEncoding.DecodeString(c.Encode(cursor.Position{CreatedAt: time.Now(), ID: id}, "s"))
		for i := range raw {
			for _, bit := range []byte{1, 0x80} {
				b := append([]byte(nil), raw...)
				b[i] ^= bit
				_, err := c.Decode(base64.RawURLEncoding.EncodeToString(b), "s")
				if !errors.Is(err, cursor.ErrTampered) && !errors.Is(err, cursor.ErrMalformed) {
					t.Errorf("id %q: flipping bit %#x of byte %d: err %v", id, bit, i, err)
				}
			}
		}
	}
}

func TestOtherSecretIsTampered(t *testing.T) {
	a, b := newCodec(t, "0123456789abcdef"), newCodec(t, "fedcba9876543210")
	tok := a.Encode(cursor.Position{CreatedAt: time.Now(), ID: "x"}, "")
	if _, err := b.Decode(tok, ""); !errors.Is(err, cursor.ErrTampered) {
		t.Errorf("cursor of another secret: %v", err)
	}
	if _, err := cursor.NewRandom().Decode(tok, ""); !errors.Is(err, cursor.ErrTampered) {
		t.Errorf("cursor of another process: %v", err)
	}
}

func TestScopeIsBound(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	tok := c.Encode(cursor.Position{CreatedAt: time.Now(), ID: "x"}, `post_id="a"`)
	if _, err := c.Decode(tok, `post_id="b"`); !errors.Is(err, cursor.ErrScope) {
		t.Errorf("other scope: %v", err)
	}
	if _, err := c.Decode(tok, ""); !errors.Is(err, cursor.ErrScope) {
		t.Errorf("no scope: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	c := newCodec(t, "0123456789abcdef")
	good := c.Encode(cursor.Position{CreatedAt: time.Now(), ID: "01935f4e-7a2b-7c3d-8e4f-5a6b7c8d9e0f"}, "")
	for _, tok := range []string{
		"", "A", "!!!!", "AQ", "AQID", good + "=", good[:len(good)-1], good + "AA",
		"Ag" + good[2:], // other version
		good[:10] + "\n" + good[10:],
		base64.RawURLEncoding.EncodeToString(make([]byte, 60)),
		base64.StdEncoding.EncodeToString([]byte("{\"$gt\":\"\"}")),
	} {
		if _, err := c.Decode(tok, ""); err == nil {
			t.Errorf("Decode(%q) succeeded", tok)
		}
	}
}

func TestShortSecretRejected(t *testing.T) {
	if _, err := cursor.New([]byte("short")); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

func FuzzDecode(f *testing.F) {
	c := newCodec(f, "0123456789abcdef")
	f.Add(c.Encode(cursor.Position{CreatedAt: time.Now(), ID: "01935f4e-7a2b-7c3d-8e4f-5a6b7c8d9e0f"}, ""))
	f.Add(c.Encode(cursor.Position{CreatedAt: time.Now(), ID: "id"}, ""))
	f.Add("AQAAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := c.Decode(tok, "")
		if err == nil && c.Encode(p, "") != tok {
			t.Errorf("accepted %q, which is not what Encode makes for %+v", tok, p)
		}
	})
}
