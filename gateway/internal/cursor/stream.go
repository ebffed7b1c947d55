package cursor

import (
	"encoding/binary"
	"math"
)

// Stream resume tokens carry a position in every partition of the topic:
// for each partition, the offset of the next record to read. A token is
// base64url (no padding) of
//
//	streamVersion(1) | scope digest (8) | partition count (uvarint) |
//	offset of each partition (uvarint) | HMAC-SHA256 tag (16)
//
// signed with the same key as the list cursors. Its version byte differs
// from theirs, so neither kind is accepted in place of the other.
const (
	streamVersion = 2
	// MaxPartitions bounds the partitions a token may carry, so a token
	// cannot make the server allocate much.
	MaxPartitions = 1024
)

// EncodeOffsets returns the resume token for offsets (one per partition,
// by partition number), bound to scope (the stream's canonical filters).
func (c *Codec) EncodeOffsets(offsets []int64, scope string) string {
	buf := make([]byte, 0, 1+digestLen+binary.MaxVarintLen64*(len(offsets)+1)+tagLen)
	buf = append(buf, streamVersion)
	buf = append(buf, digest(scope)...)
	buf = binary.AppendUvarint(buf, uint64(len(offsets)))
	for _, o := range offsets {
		buf = binary.AppendUvarint(buf, uint64(max(o, 0)))
	}
	return c.seal(buf)
}

// DecodeOffsets checks a resume token and returns its offsets. scope must
// be the canonical filters of the stream it is used with. Its errors are
// the list cursor's: ErrMalformed, ErrTampered, ErrScope.
func (c *Codec) DecodeOffsets(token, scope string) ([]int64, error) {
	body, tag, err := open(token, streamVersion, 1+digestLen+1+tagLen)
	if err != nil {
		return nil, err
	}
	rest := body[1+digestLen:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > MaxPartitions {
		return nil, ErrMalformed
	}
	rest = rest[k:]
	offsets := make([]int64, 0, n)
	for range n {
		o, k := binary.Uvarint(rest)
		if k <= 0 || o > math.MaxInt64 {
			return nil, ErrMalformed
		}
		offsets = append(offsets, int64(o))
		rest = rest[k:]
	}
	if len(rest) != 0 {
		return nil, ErrMalformed
	}
	if err := c.verify(body, tag, 1, scope); err != nil {
		return nil, err
	}
	return offsets, nil
}
