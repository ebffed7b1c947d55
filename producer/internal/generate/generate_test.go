package generate

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/schemas"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
var uuidAny = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func mustNew(t testing.TB, opts Options) *Generator {
	t.Helper()
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func take(g *Generator, n int) []schemas.Comment {
	out := make([]schemas.Comment, n)
	for i := range out {
		g.Next(&out[i])
	}
	return out
}

// stripTime drops created_at, the one field that is the real clock.
func stripTime(cs []schemas.Comment) []schemas.Comment {
	out := slices.Clone(cs)
	for i := range out {
		out[i].CreatedAt = time.Time{}
	}
	return out
}

func TestSameSeedSameComments(t *testing.T) {
	a := take(mustNew(t, Options{Seed: 42, Posts: 50}), 500)
	b := take(mustNew(t, Options{Seed: 42, Posts: 50}), 500)
	if !slices.Equal(stripTime(a), stripTime(b)) {
		for i := range a {
			if a[i].ID != b[i].ID || a[i].Text != b[i].Text {
				t.Fatalf("seed 42 is not reproducible: comment %d differs:\n%+v\n%+v", i, a[i], b[i])
			}
		}
		t.Fatal("seed 42 is not reproducible")
	}
	c := take(mustNew(t, Options{Seed: 43, Posts: 50}), 500)
	for i := range a {
		if a[i].ID == c[i].ID || a[i].PostID == c[i].PostID && a[i].Text == c[i].Text {
			t.Fatalf("seeds 42 and 43 gave the same comment %d: %+v", i, a[i])
		}
	}
}

func TestRandomSeedIsReported(t *testing.T) {
	g1 := mustNew(t, Options{Posts: 10})
	g2 := mustNew(t, Options{Posts: 10})
	if g1.Seed() == 0 || g1.Seed() == g2.Seed() || g1.Seed() > math.MaxInt64 || g2.Seed() > math.MaxInt64 {
		t.Fatalf("random seeds %d and %d: want two different non-zero seeds that fit an int64", g1.Seed(), g2.Seed())
	}
	// Replaying the reported seed gives the same comments, ids aside (a
	// random run stamps ids with the wall clock).
	replay := mustNew(t, Options{Seed: g1.Seed(), Posts: 10})
	a, b := take(g1, 50), take(replay, 50)
	for i := range a {
		if a[i].PostID != b[i].PostID || a[i].Name != b[i].Name || a[i].Text != b[i].Text || a[i].Address != b[i].Address {
			t.Fatalf("replay of seed %d differs at %d:\n%+v\n%+v", g1.Seed(), i, a[i], b[i])
		}
	}
}

func TestCommentsAreValidAndRealistic(t *testing.T) {
	const n, posts = 5000, 200
	for _, seed := range []uint64{0, 7} {
		g := mustNew(t, Options{Seed: seed, Posts: posts})
		cs := take(g, n)
		pool := map[string]bool{}
		for _, p := range g.Posts() {
			if !uuidAny.MatchString(p) {
				t.Fatalf("post id %q is not a UUID", p)
			}
			pool[p] = true
		}
		if len(pool) != posts {
			t.Fatalf("post pool has %d distinct ids, want %d", len(pool), posts)
		}
		perPost := map[string]int{}
		sentences := map[int]int{}
		lengths := map[int]bool{}
		for i, c := range cs {
			if err := schemas.Validate(&c); err != nil {
				t.Fatalf("comment %d is invalid: %v\n%+v", i, err, c)
			}
			if !uuidV7.MatchString(c.ID) {
				t.Fatalf("id %q is not a UUIDv7", c.ID)
			}
			if i > 0 && c.ID <= cs[i-1].ID {
				t.Fatalf("ids not strictly increasing: %s after %s", c.ID, cs[i-1].ID)
			}
			if !pool[c.PostID] {
				t.Fatalf("post_id %q is not from the pool", c.PostID)
			}
			perPost[c.PostID]++
			if strings.TrimSpace(c.Name) == "" || strings.TrimSpace(c.Text) == "" || strings.TrimSpace(c.Address) == "" {
				t.Fatalf("empty field in %+v", c)
			}
			if !c.CreatedAt.Equal(c.CreatedAt.Truncate(time.Millisecond)) || c.CreatedAt.Location() != time.UTC {
				t.Fatalf("created_at %v is not UTC at millisecond precision", c.CreatedAt)
			}
			sentences[countSentences(c.Text)]++
			lengths[len(c.Text)/20] = true
		}
		// Threads: some posts are popular, so the busiest one has far more
		// comments than an even spread would give.
		busiest := 0
		for _, k := range perPost {
			busiest = max(busiest, k)
		}
		if busiest < 3*n/posts {
			t.Errorf("busiest post has %d comments; want a skew (>= %d)", busiest, 3*n/posts)
		}
		if len(perPost) < posts/2 {
			t.Errorf("only %d of %d posts got comments", len(perPost), posts)
		}
		if len(lengths) < 5 {
			t.Errorf("text lengths fall in only %d buckets of 20 characters; want varied lengths", len(lengths))
		}
		if sentences[1] == 0 || sentences[3]+sentences[4] == 0 {
			t.Errorf("sentence counts %v: want both one-liners and paragraphs", sentences)
		}
	}
}

func countSentences(s string) int {
	n := 0
	for _, f := range strings.Fields(s) {
		if strings.ContainsAny(f[len(f)-1:], ".!?") {
			n++
		}
	}
	return max(n, 1)
}

func TestCreatedAtIsGenerationTime(t *testing.T) {
	clock := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("X", 3600))
	g := mustNew(t, Options{Posts: 3, Now: func() time.Time { return clock }})
	c := g.Comment()
	want := time.Date(2026, 3, 4, 4, 6, 7, 891_000_000, time.UTC)
	if !c.CreatedAt.Equal(want) || c.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at = %v, want %v", c.CreatedAt, want)
	}
	// A random run's id carries the same millisecond.
	if got := idMillis(t, c.ID); got != want.UnixMilli() {
		t.Fatalf("id %s has timestamp %d, want %d", c.ID, got, want.UnixMilli())
	}
}

func TestIDsStayMonotonicWhenTheClockStalls(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	g := mustNew(t, Options{Posts: 3, Now: func() time.Time { return clock }})
	prev := ""
	for i := range 10_000 { // far more than one millisecond's 12-bit counter
		if i == 5000 {
			clock = clock.Add(-time.Second) // and a step back
		}
		id := g.Comment().ID
		if id <= prev {
			t.Fatalf("id %d %s is not after %s", i, id, prev)
		}
		prev = id
	}
}

func TestSeededIDsUseTheSeededClock(t *testing.T) {
	g := mustNew(t, Options{Seed: 1, Posts: 3})
	for i := range 3 {
		if got, want := idMillis(t, g.Comment().ID), SeededEpoch.UnixMilli()+int64(i); got != want {
			t.Fatalf("seeded id %d has timestamp %d, want %d", i, got, want)
		}
	}
}

func idMillis(t *testing.T, id string) int64 {
	t.Helper()
	h := strings.ReplaceAll(id, "-", "")[:12]
	var ms int64
	for _, c := range h {
		ms = ms<<4 | int64(strings.IndexRune("0123456789abcdef", c))
	}
	return ms
}

func TestBadPoolSize(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := New(Options{Posts: n}); err == nil {
			t.Errorf("Posts=%d: want an error", n)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g := mustNew(b, Options{Seed: 1, Posts: 200})
	var c schemas.Comment
	for b.Loop() {
		g.Next(&c)
	}
}
