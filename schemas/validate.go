package schemas

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The contract of a valid comment, beyond what Avro types say. It is
// written down in comment.avsc (each field's doc) and the README, and
// checked by Validate; a comment that breaks it is poison of class
// ClassInvalid, with a reason that starts with the field's name.
const (
	// MaxNameLen, MaxTextLen and MaxAddressLen are the longest name, text
	// and address, in Unicode code points (characters), not bytes.
	MaxNameLen    = 200
	MaxTextLen    = 10000
	MaxAddressLen = 500

	// DefaultMaxFutureSkew is how far in the future a created_at may be,
	// by the consumer's clock, unless configured otherwise: producers'
	// clocks drift, but an event from next year would sit at the top of
	// every list for a year.
	DefaultMaxFutureSkew = time.Hour
)

// MinCreatedAt is the earliest valid created_at, the Unix epoch itself
// excluded (0 is what an unset timestamp-millis reads as).
var MinCreatedAt = time.Unix(0, 0).UTC()

// Validator checks comments. The zero value uses DefaultMaxFutureSkew and
// the system clock.
type Validator struct {
	MaxFutureSkew time.Duration    // 0 = DefaultMaxFutureSkew
	Now           func() time.Time // nil = time.Now
}

// Validate checks c with the default Validator.
func Validate(c *Comment) error { return Validator{}.Validate(c) }

// Validate checks what the schema cannot say, and canonicalises c's UUIDs
// in place:
//
//   - id and post_id are UUIDs in the 36-character hyphenated form, hex
//     digits of either case; they are rewritten in lower case (RFC 9562's
//     canonical form), so both spellings of one UUID are one comment, one
//     document, found by the API, which lower-cases what it is given.
//     Refusing upper case would dead-letter comments whose identity is
//     perfectly clear, so it is canonicalised instead.
//   - created_at is after 1970-01-01T00:00:00Z and at most MaxFutureSkew
//     ahead of the clock, so it is always an RFC 3339 date-time.
//   - text is not blank; text, name and address are valid UTF-8, contain
//     no control characters (C0, DEL, C1) except newline and tab in text,
//     and are at most MaxTextLen, MaxNameLen and MaxAddressLen characters.
//
// Its errors are *DecodeError of ClassInvalid.
func (v Validator) Validate(c *Comment) error {
	if !isUUID(c.ID) {
		return decodeErr(ClassInvalid, 0, "id %q is not a UUID", clip(c.ID))
	}
	if !isUUID(c.PostID) {
		return decodeErr(ClassInvalid, 0, "post_id %q is not a UUID", clip(c.PostID))
	}
	c.ID, c.PostID = lowerHex(c.ID), lowerHex(c.PostID)
	if err := checkText("text", c.Text, MaxTextLen, true); err != nil {
		return err
	}
	if strings.TrimSpace(c.Text) == "" {
		return decodeErr(ClassInvalid, 0, "text is empty")
	}
	if err := checkText("name", c.Name, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkText("address", c.Address, MaxAddressLen, false); err != nil {
		return err
	}
	return v.checkCreatedAt(c.CreatedAt)
}

func (v Validator) checkCreatedAt(t time.Time) error {
	if t.IsZero() || t.UnixMilli() == 0 {
		return decodeErr(ClassInvalid, 0, "created_at is not set")
	}
	if t.Before(MinCreatedAt) {
		return decodeErr(ClassInvalid, 0, "created_at %s is before 1970", fmtTime(t))
	}
	skew := v.MaxFutureSkew
	if skew <= 0 {
		skew = DefaultMaxFutureSkew
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if limit := now().Add(skew); t.After(limit) {
		return decodeErr(ClassInvalid, 0, "created_at %s is more than %s in the future", fmtTime(t), skew)
	}
	return nil
}

// fmtTime prints any time, even one RFC 3339 cannot.
func fmtTime(t time.Time) string {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.UTC().String()
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// checkText checks that s is valid UTF-8 of at most maxLen characters with
// no control characters, except newline and tab when text is set.
func checkText(field, s string, maxLen int, text bool) error {
	n := 0
	for i := 0; i < len(s); n++ {
		b := s[i]
		if b < utf8.RuneSelf { // ASCII: the common case
			if (b < 0x20 || b == 0x7f) && (!text || (b != '\n' && b != '\t')) {
				return decodeErr(ClassInvalid, 0, "%s has the control character %U at byte %d", field, rune(b), i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return decodeErr(ClassInvalid, 0, "%s is not valid UTF-8 at byte %d", field, i)
		}
		if unicode.IsControl(r) {
			return decodeErr(ClassInvalid, 0, "%s has the control character %U at byte %d", field, r, i)
		}
		i += size
	}
	if n > maxLen {
		return decodeErr(ClassInvalid, 0, "%s is %d characters, more than %d", field, n, maxLen)
	}
	return nil
}

// lowerHex is s with ASCII upper-case letters lowered, without allocating
// when there are none.
func lowerHex(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'F' {
			return strings.ToLower(s)
		}
	}
	return s
}
