package schemas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"
)

// headerLen is the Confluent wire-format header: magic byte + schema ID.
const headerLen = 5

// confluent reads and writes the Confluent wire-format header (franz-go's
// own, also behind sr.Serde). The Decoder keeps its own lookup around it:
// lazy, resolved to the current Comment, single-flight, with a negative
// cache, none of which sr.Serde has.
var confluent sr.ConfluentHeader

// Encoder frames Comments for one registered schema ID.
type Encoder struct {
	id     int
	header []byte    // made once: magic byte + schema ID
	pool   sync.Pool // *avro.Writer
}

// NewEncoder is an Encoder for the schema registered with id. It panics if
// id is outside 0..math.MaxInt32, which no registry hands out.
func NewEncoder(id int) *Encoder {
	e := &Encoder{id: id, header: appendHeader(make([]byte, 0, headerLen), id)}
	e.pool.New = func() any { return avro.NewWriter(nil, 512) }
	return e
}

// SchemaID is the ID the Encoder writes.
func (e *Encoder) SchemaID() int { return e.id }

// Append appends c in the wire format to dst.
func (e *Encoder) Append(dst []byte, c *Comment) ([]byte, error) {
	w := e.pool.Get().(*avro.Writer)
	defer e.pool.Put(w)
	w.Reset(nil)
	_, _ = w.Write(e.header)
	w.WriteVal(commentSchema, c)
	if w.Error != nil {
		err := w.Error
		w.Error = nil
		return dst, fmt.Errorf("encode comment: %w", err)
	}
	return append(dst, w.Buffer()...), nil
}

// Encode returns c in the wire format.
func (e *Encoder) Encode(c *Comment) ([]byte, error) { return e.Append(nil, c) }

// Frame wraps an Avro body already encoded with schema id in the wire
// format (for other schema versions and tests). It panics on an id
// NewEncoder would reject.
func Frame(id int, body []byte) []byte {
	return append(appendHeader(make([]byte, 0, headerLen+len(body)), id), body...)
}

// appendHeader appends the wire-format header of schema id to dst.
// Registry IDs are positive int32s; anything else is a programming error,
// not bad input, and panics.
func appendHeader(dst []byte, id int) []byte {
	if id < 0 || id > math.MaxInt32 {
		panic(fmt.Sprintf("schemas: schema ID %d does not fit the 4-byte header", id))
	}
	dst, _ = confluent.AppendEncode(dst, id, nil) // no index: that is Protobuf's
	return dst
}

// SchemaIDOf reads the schema ID of a framed record.
func SchemaIDOf(b []byte) (int, error) {
	id, _, err := split(b)
	return id, err
}

// split reads the header of a framed record: the schema ID and the Avro
// body. Its errors are *DecodeError of ClassBadFraming.
func split(b []byte) (int, []byte, error) {
	id, body, err := confluent.DecodeID(b)
	switch {
	case err == nil:
		return id, body, nil
	case len(b) < headerLen:
		return 0, nil, decodeErr(ClassBadFraming, 0, "record is %d bytes, shorter than the 5-byte header", len(b))
	default:
		return 0, nil, decodeErr(ClassBadFraming, 0, "magic byte is 0x%02x, want 0x00", b[0])
	}
}

// Decoder decodes framed records of any schema ID into the current Comment
// type. It is safe for concurrent use.
type Decoder struct {
	cl     *sr.Client
	cache  atomic.Pointer[map[int]*writer] // copy on write: reads take no lock
	mu     sync.Mutex                      // serializes cache writes
	flight singleflight.Group

	// unknown remembers, for UnknownTTL, the IDs the registry answered 404
	// for, so a burst of poison with made-up IDs costs one lookup per ID,
	// not one per record.
	unknownMu sync.Mutex
	unknown   map[int]time.Time // id -> when to ask again

	validator Validator
}

// UnknownTTL is how long a schema ID the registry did not know is answered
// as unknown without asking again. An ID is only ever assigned by
// registering a schema, so a record carrying one the registry does not
// know is poison whenever it is read; the TTL only bounds the memory of it.
const UnknownTTL = time.Minute

// writer is a resolved writer schema: what to decode a body with.
type writer struct {
	schema avro.Schema // the reader schema itself, or a writer->reader composite
	err    error       // a permanent failure, remembered (not resolvable)
}

// NewDecoder is a Decoder that looks writer schemas up in cl.
// It validates with the default Validator.
func NewDecoder(cl *sr.Client) *Decoder { return NewDecoderWith(cl, Validator{}) }

// NewDecoderWith is a Decoder that validates decoded comments with v.
func NewDecoderWith(cl *sr.Client, v Validator) *Decoder {
	d := &Decoder{cl: cl, validator: v}
	d.cache.Store(&map[int]*writer{})
	return d
}

// Decode reads a framed record, validates it (canonicalising its UUIDs,
// see Validate), and returns the comment and
// its writer schema ID. Every error is a *DecodeError.
func (d *Decoder) Decode(ctx context.Context, b []byte) (Comment, int, error) {
	var c Comment
	id, body, err := split(b)
	if err != nil {
		return c, 0, err
	}
	w, ok := (*d.cache.Load())[id]
	if !ok {
		if w, err = d.fetch(ctx, id); err != nil {
			return c, id, err
		}
	}
	if w.err != nil {
		return c, id, w.err
	}
	if err := unmarshal(w.schema, body, &c); err != nil {
		return c, id, &DecodeError{Class: ClassAvroDecode, SchemaID: id, Err: err}
	}
	if err := d.validator.Validate(&c); err != nil {
		if de, ok := errors.AsType[*DecodeError](err); ok {
			de.SchemaID = id
		}
		return c, id, err
	}
	return c, id, nil
}

func unmarshal(s avro.Schema, body []byte, c *Comment) (err error) {
	defer func() { // hamba/avro should not panic on bad input; never let it kill a consumer
		if r := recover(); r != nil {
			err = fmt.Errorf("avro: panic decoding: %v", r)
		}
	}()
	// Not avro.Unmarshal: it treats running out of bytes as success, so a
	// truncated record would decode into zero values.
	r := readers.Get().(*avro.Reader)
	defer readers.Put(r)
	r.Reset(body)
	r.Error = nil
	r.ReadVal(s, c)
	if r.Error != nil {
		if errors.Is(r.Error, io.EOF) {
			return fmt.Errorf("avro: record truncated: %w", io.ErrUnexpectedEOF)
		}
		return r.Error
	}
	// The record must be the whole body: bytes after it mean the writer
	// and the schema disagree, so what was read cannot be trusted.
	if r.Peek(); r.Error == nil {
		return errors.New("avro: trailing bytes after the record")
	}
	r.Error = nil
	return nil
}

var readers = sync.Pool{New: func() any { return avro.NewReader(nil, 0) }}

// fetch gets schema id from the registry once (concurrent callers share one
// request) and caches the result.
func (d *Decoder) fetch(ctx context.Context, id int) (*writer, error) {
	if d.knownUnknown(id) {
		return nil, decodeErr(ClassUnknownSchema, id, "schema id %d is not in the registry (asked less than %s ago)", id, UnknownTTL)
	}
	v, err, _ := d.flight.Do(strconv.Itoa(id), func() (any, error) {
		if w, ok := (*d.cache.Load())[id]; ok {
			return w, nil
		}
		s, err := d.cl.SchemaByID(ctx, id)
		switch {
		case isNotFound(err):
			d.rememberUnknown(id)
			return nil, &DecodeError{Class: ClassUnknownSchema, SchemaID: id, Err: err}
		case err != nil:
			return nil, &DecodeError{Class: ClassRegistryUnavailable, SchemaID: id, Err: err}
		}
		w := resolve(id, s)
		d.mu.Lock()
		defer d.mu.Unlock()
		old := *d.cache.Load()
		next := make(map[int]*writer, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[id] = w
		d.cache.Store(&next)
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*writer), nil
}

func (d *Decoder) knownUnknown(id int) bool {
	d.unknownMu.Lock()
	defer d.unknownMu.Unlock()
	until, ok := d.unknown[id]
	if ok && time.Now().After(until) {
		delete(d.unknown, id)
		return false
	}
	return ok
}

func (d *Decoder) rememberUnknown(id int) {
	d.unknownMu.Lock()
	defer d.unknownMu.Unlock()
	now := time.Now()
	if d.unknown == nil || len(d.unknown) >= 10000 { // bound the memory of a flood
		d.unknown = map[int]time.Time{}
	}
	d.unknown[id] = now.Add(UnknownTTL)
}

// resolve turns a registered schema into what decodes its records as a
// Comment: the reader schema itself when identical, else a resolved
// composite (schema evolution).
func resolve(id int, s sr.Schema) *writer {
	if s.Type != sr.TypeAvro {
		return &writer{err: decodeErr(ClassAvroDecode, id, "schema %d is %s, not Avro", id, s.Type)}
	}
	ws, err := ParseSchema(s.Schema)
	if err != nil {
		return &writer{err: decodeErr(ClassAvroDecode, id, "writer schema %d does not parse: %v", id, err)}
	}
	if ws.Fingerprint() == commentSchema.Fingerprint() {
		return &writer{schema: commentSchema}
	}
	composite, err := avro.NewSchemaCompatibility().Resolve(commentSchema, ws)
	if err != nil {
		return &writer{err: decodeErr(ClassAvroDecode, id, "writer schema %d cannot be read as the current Comment: %v", id, err)}
	}
	return &writer{schema: composite}
}

// isUUID accepts only the canonical 36-character form: hex digits (either
// case) with dashes at 8, 13, 18 and 23, which is what uuid.Parse accepts at
// that length (TestIsUUIDMatchesUUIDParse holds them equal). Every decoded
// record checks two, so the 32 hex digits are checked 8 at a time, in half
// the time uuid.Parse takes.
func isUUID(s string) bool {
	return len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' &&
		hex8(bytes4(s, 0)|bytes4(s, 4)<<32) && hex8(bytes4(s, 9)|bytes4(s, 14)<<32) &&
		hex8(bytes4(s, 19)|bytes4(s, 24)<<32) && hex8(bytes4(s, 28)|bytes4(s, 32)<<32)
}

// bytes4 packs s[i:i+4] into the low 32 bits.
func bytes4(s string, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24
}

const (
	lowBits  = 0x0101010101010101 // 0x01 in every byte
	highBits = 0x8080808080808080 // 0x80 in every byte
)

// hex8 reports whether each of the 8 bytes packed in x is an ASCII hex
// digit. With every byte below 0x80, adding 0x80-lo sets a byte's high bit
// exactly when the byte is >= lo, and adding 0x7f-hi exactly when it is
// > hi, with no carry into the next byte.
func hex8(x uint64) bool {
	if x&highBits != 0 {
		return false
	}
	atLeast := func(x uint64, lo byte) uint64 { return (x + lowBits*uint64(0x80-lo)) & highBits }
	above := func(x uint64, hi byte) uint64 { return (x + lowBits*uint64(0x7f-hi)) & highBits }
	lower := x | lowBits*0x20 // 'A'-'F' -> 'a'-'f'; digits keep their value
	digit := atLeast(x, '0') &^ above(x, '9')
	letter := atLeast(lower, 'a') &^ above(lower, 'f')
	return digit|letter == highBits
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
