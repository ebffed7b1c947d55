// Package generate makes realistic, reproducible social-network comments:
// an author name, one to four sentences of text, a postal address, a post
// the comment belongs to, a UUIDv7 id and the event time.
//
// Everything random comes from one seeded gofakeit source, so a seed
// reproduces a run: the same posts, the same authors and texts in the same
// order, and the same comment ids.
package generate

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/brianvoe/gofakeit/v7"

	"github.com/commentflow/commentflow/schemas"
)

// SeededEpoch is where the id clock of a seeded generator starts. The
// timestamp bits of a UUIDv7 are part of the id, so a generator that must
// give the same ids for the same seed cannot take them from the wall clock:
// a seeded generator counts one millisecond per comment from here instead.
// created_at is always the real time of generation.
var SeededEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Options configure a Generator.
type Options struct {
	// Seed makes the run reproducible; 0 picks a random seed (see
	// Generator.Seed) and stamps ids with the wall clock.
	Seed uint64
	// Posts is the size of the pool of post ids comments attach to.
	Posts int
	// Now is the clock for created_at; nil is time.Now.
	Now func() time.Time
}

// Generator makes comments. It is not safe for concurrent use: one
// goroutine owns it.
type Generator struct {
	f      *gofakeit.Faker
	seed   uint64
	seeded bool
	now    func() time.Time
	posts  []string

	lastMS  int64  // timestamp of the last id, for monotonic ids
	counter uint16 // 12-bit rand_a counter within lastMS
	virtMS  int64  // the seeded id clock

	sb strings.Builder
}

// New returns a generator with a pool of opts.Posts posts.
func New(opts Options) (*Generator, error) {
	if opts.Posts < 1 {
		return nil, fmt.Errorf("generate: post pool size must be at least 1, got %d", opts.Posts)
	}
	g := &Generator{seed: opts.Seed, seeded: opts.Seed != 0, now: opts.Now}
	if g.now == nil {
		g.now = time.Now
	}
	if !g.seeded {
		var b [8]byte
		for g.seed == 0 {
			if _, err := crand.Read(b[:]); err != nil {
				return nil, errors.New("generate: no randomness for a seed")
			}
			// 63 bits, so that the seed fits PRODUCER_SEED (an int64)
			g.seed = binary.LittleEndian.Uint64(b[:]) >> 1
		}
	}
	g.f = gofakeit.New(g.seed)
	g.virtMS = SeededEpoch.UnixMilli()
	g.posts = make([]string, opts.Posts)
	for i := range g.posts {
		g.posts[i] = g.f.UUID()
	}
	return g, nil
}

// Seed is the seed in use: the one given, or the random one picked. Logging
// it lets a random run be replayed (texts, authors, posts; ids too, but
// on the seeded id clock).
func (g *Generator) Seed() uint64 { return g.seed }

// Posts is the pool of post ids (not to be modified).
func (g *Generator) Posts() []string { return g.posts }

// Next fills c with a new comment.
func (g *Generator) Next(c *schemas.Comment) {
	now := g.now().UTC().Truncate(time.Millisecond)
	ms := now.UnixMilli()
	if g.seeded {
		ms = g.virtMS
		g.virtMS++
	}
	c.ID = g.newID(ms)
	c.PostID = g.posts[g.pickPost()]
	c.Name = g.f.Name()
	c.Text = g.text()
	c.Address = g.address()
	c.CreatedAt = now
}

// Comment returns a new comment.
func (g *Generator) Comment() schemas.Comment {
	var c schemas.Comment
	g.Next(&c)
	return c
}

// pickPost skews towards the start of the pool (index = n·u²), so a few
// posts have long threads and most have short ones, as on a real network.
func (g *Generator) pickPost() int {
	u := g.f.Float64()
	i := int(u * u * float64(len(g.posts)))
	return min(i, len(g.posts)-1)
}

// text is one to four sentences (mostly one or two) mixing statements,
// questions, chatty remarks and the odd hipster line, so lengths vary from a
// couple of words to a short paragraph.
func (g *Generator) text() string {
	var n int
	switch r := g.f.IntN(100); {
	case r < 40:
		n = 1
	case r < 75:
		n = 2
	case r < 92:
		n = 3
	default:
		n = 4
	}
	g.sb.Reset()
	for i := range n {
		var s string
		switch r := g.f.IntN(100); {
		case r < 40:
			s = g.f.Sentence()
		case r < 60:
			s = g.f.Question()
		case r < 85:
			s = g.f.Comment()
		default:
			s = g.f.HipsterSentence()
		}
		s = strings.TrimSpace(s)
		if s == "" {
			s = "Nice."
		}
		if n > 1 { // in a paragraph, every sentence starts upper and ends with punctuation
			s = sentenceCase(s)
		}
		if i > 0 {
			g.sb.WriteByte(' ')
		}
		g.sb.WriteString(s)
	}
	return g.sb.String()
}

func sentenceCase(s string) string {
	if c := s[0]; c >= 'a' && c <= 'z' {
		s = string(c-'a'+'A') + s[1:]
	}
	switch s[len(s)-1] {
	case '.', '!', '?', '"':
		return s
	}
	return s + "."
}

// address is a US-style postal address, with a unit three times in ten.
func (g *Generator) address() string {
	g.sb.Reset()
	g.sb.WriteString(g.f.Street())
	if g.f.IntN(10) < 3 {
		g.sb.WriteString(", ")
		g.sb.WriteString(g.f.Unit())
	}
	g.sb.WriteString(", ")
	g.sb.WriteString(g.f.City())
	g.sb.WriteString(", ")
	g.sb.WriteString(g.f.StateAbr())
	g.sb.WriteByte(' ')
	g.sb.WriteString(g.f.Zip())
	return g.sb.String()
}

// newID is a UUIDv7 (RFC 9562 §5.7) for the millisecond ms, with the
// random bits from the seeded source. Ids are strictly increasing: within
// one millisecond (or if the clock steps back) rand_a is a counter started
// at a random value below 2048, and its overflow borrows the next
// millisecond (RFC 9562 §6.2, method 1).
//
// Every id draws the same two numbers from the source whichever branch it
// takes, so the rest of a run does not depend on the clock.
func (g *Generator) newID(ms int64) string {
	randA, randB := g.f.Uint64(), g.f.Uint64()
	if ms <= g.lastMS {
		ms = g.lastMS
		g.counter++
		if g.counter > 0xfff {
			ms++
			g.counter = uint16(randA & 0x7ff)
		}
	} else {
		g.counter = uint16(randA & 0x7ff)
	}
	g.lastMS = ms

	var u [16]byte
	//nolint:gosec // G115: ms >= 0, as it is at least lastMS, which starts at 0 and never decreases.
	binary.BigEndian.PutUint64(u[0:8], uint64(ms)<<16|0x7000|uint64(g.counter))
	binary.BigEndian.PutUint64(u[8:16], randB&0x3fffffffffffffff|0x8000000000000000)
	return formatUUID(&u)
}

func formatUUID(u *[16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
