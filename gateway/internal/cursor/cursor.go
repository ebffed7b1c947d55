// Package cursor makes and checks the keyset-pagination cursors of the
// comment list: opaque, URL-safe tokens that carry the position of the last
// comment of a page (its created_at and id) and are bound to the filters of
// the query that issued them.
//
// A token is base64url (no padding) of
//
//	version(1) | created_at unix ms (8, big endian) | scope digest (8) |
//	id kind(1) | id (16 bytes for a canonical UUID, else len(1)+bytes) |
//	HMAC-SHA256 tag (16)
//
// The tag covers everything before it, so any edit is detected; the scope
// digest lets a valid cursor used with other filters be told apart from a
// forged one.
package cursor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Errors returned by Decode; all mean the client sent a bad cursor.
var (
	// ErrMalformed: not a token this codec could have made.
	ErrMalformed = errors.New("malformed cursor")
	// ErrTampered: well-formed but its signature does not match (edited,
	// or signed with another secret, e.g. before a restart without
	// GATEWAY_CURSOR_SECRET).
	ErrTampered = errors.New("cursor signature is invalid")
	// ErrScope: a genuine cursor used with other filters than it was
	// issued for.
	ErrScope = errors.New("cursor was issued for different filters")
)

const (
	version    = 1
	tagLen     = 16
	digestLen  = 8
	idUUID     = 1
	idString   = 2
	maxIDBytes = 255
	headerLen  = 1 + 8 + digestLen + 1
	minLen     = headerLen + 1 + tagLen // shortest: empty string id
)

// MinSecretLen is the shortest secret New accepts.
const MinSecretLen = 16

// Position is where a page ended: the sort key of its last comment.
type Position struct {
	CreatedAt time.Time // millisecond precision (BSON dates)
	ID        string
}

// Codec signs and verifies cursors with one secret. It is safe for
// concurrent use.
type Codec struct {
	key []byte
}

// New returns a codec keyed by secret (at least MinSecretLen bytes).
func New(secret []byte) (*Codec, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("cursor secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	// Derive a purpose-specific key so the configured secret is never used
	// directly.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("commentflow gateway cursor v1"))
	return &Codec{key: m.Sum(nil)}, nil
}

// NewRandom returns a codec with a random secret: cursors then only work
// within this process.
func NewRandom() *Codec {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand panics instead)
	c, _ := New(secret)
	return c
}

// Encode returns the cursor for p, bound to scope (a canonical rendering of
// the query's filters).
func (c *Codec) Encode(p Position, scope string) string {
	buf := make([]byte, 0, headerLen+1+len(p.ID)+tagLen)
	buf = append(buf, version)
	buf = binary.BigEndian.AppendUint64(buf, uint64(p.CreatedAt.UnixMilli()))
	buf = append(buf, digest(scope)...)
	if u, err := uuid.Parse(p.ID); err == nil && u.String() == p.ID {
		buf = append(buf, idUUID)
		buf = append(buf, u[:]...)
	} else {
		id := p.ID
		if len(id) > maxIDBytes {
			// Ids are UUIDs; a longer one cannot round-trip, so make a
			// token that will never verify rather than a wrong position.
			id = id[:maxIDBytes]
		}
		buf = append(buf, idString, byte(len(id))) //nolint:gosec // G115: len(id) <= maxIDBytes (255), cut above
		buf = append(buf, id...)
	}
	return c.seal(buf)
}

// Decode checks token and returns its position. scope must be the canonical
// filters of the query it is used with.
func (c *Codec) Decode(token, scope string) (Position, error) {
	body, tag, err := open(token, version, minLen)
	if err != nil {
		return Position{}, err
	}
	var id string
	switch rest := body[headerLen:]; body[headerLen-1] {
	case idUUID:
		if len(rest) != 16 {
			return Position{}, ErrMalformed
		}
		id = uuid.UUID(rest).String()
	case idString:
		if len(rest) < 1 || int(rest[0]) != len(rest)-1 {
			return Position{}, ErrMalformed
		}
		id = string(rest[1:])
	default:
		return Position{}, ErrMalformed
	}
	if err := c.verify(body, tag, 9, scope); err != nil {
		return Position{}, err
	}
	ms := int64(binary.BigEndian.Uint64(body[1:9])) //nolint:gosec // G115: the two's complement Encode wrote, so dates before 1970 round-trip
	return Position{CreatedAt: time.UnixMilli(ms).UTC(), ID: id}, nil
}

// The envelope of both kinds of token (cursors and stream resume tokens):
// base64url of a body that starts with the version byte and holds a scope
// digest, then the body's HMAC tag.

// seal appends the tag to buf and encodes the token.
func (c *Codec) seal(buf []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(buf, c.tag(buf)...))
}

// open decodes a token of version ver, at least minLen bytes long, into its
// body and tag (not checked yet: the caller parses the body first, so a
// malformed token is ErrMalformed whatever its tag).
func open(token string, ver byte, minLen int) (body, tag []byte, err error) {
	if strings.ContainsAny(token, "\r\n") { // the decoder would skip them
		return nil, nil, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) < minLen || raw[0] != ver {
		return nil, nil, ErrMalformed
	}
	return raw[:len(raw)-tagLen], raw[len(raw)-tagLen:], nil
}

// verify checks body's tag, then that the scope digest at digestAt in body
// is scope's.
func (c *Codec) verify(body, tag []byte, digestAt int, scope string) error {
	if subtle.ConstantTimeCompare(tag, c.tag(body)) != 1 {
		return ErrTampered
	}
	if subtle.ConstantTimeCompare(body[digestAt:digestAt+digestLen], digest(scope)) != 1 {
		return ErrScope
	}
	return nil
}

func (c *Codec) tag(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(body)
	return m.Sum(nil)[:tagLen]
}

func digest(scope string) []byte {
	sum := sha256.Sum256([]byte(scope))
	return sum[:digestLen]
}
