package cursor

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestOffsetsRoundTrip(t *testing.T) {
	c, err := New([]byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	for _, offs := range [][]int64{{}, {0}, {5, 0, 1 << 40}, make([]int64, 64)} {
		tok := c.EncodeOffsets(offs, "s")
		got, err := c.DecodeOffsets(tok, "s")
		if err != nil || !slices.Equal(got, offs) {
			t.Errorf("%v: got %v, %v", offs, got, err)
		}
	}
}

// TestOffsetsRejected: edited tokens, tokens of another key, other
// filters, and list cursors are refused, each with its error.
func TestOffsetsRejected(t *testing.T) {
	c, _ := New([]byte("0123456789abcdef0123"))
	other, _ := New([]byte("another secret 0123456789"))
	tok := c.EncodeOffsets([]int64{3, 4, 5}, "s")
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	edited := slices.Clone(raw)
	edited[1+digestLen+1] ^= 1 // the first offset
	list := c.Encode(Position{CreatedAt: time.UnixMilli(1), ID: "x"}, "s")
	for name, tc := range map[string]struct {
		tok   string
		scope string
		want  error
	}{
		"edited offset":    {base64.RawURLEncoding.EncodeToString(edited), "s", ErrTampered},
		"other key":        {other.EncodeOffsets([]int64{3, 4, 5}, "s"), "s", ErrTampered},
		"other filters":    {tok, "t", ErrScope},
		"list cursor":      {list, "s", ErrMalformed},
		"truncated":        {tok[:len(tok)-3], "s", ErrMalformed},
		"not base64":       {"!!", "s", ErrMalformed},
		"newline":          {tok + "\n", "s", ErrMalformed},
		"empty":            {"", "s", ErrMalformed},
		"too many offsets": {c.EncodeOffsets(make([]int64, MaxPartitions+1), "s"), "s", ErrMalformed},
	} {
		if _, err := c.DecodeOffsets(tc.tok, tc.scope); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// And a stream token is no list cursor.
	if _, err := c.Decode(tok, "s"); !errors.Is(err, ErrMalformed) {
		t.Errorf("stream token as a list cursor: %v", err)
	}
}
