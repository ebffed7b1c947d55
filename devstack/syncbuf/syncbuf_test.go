package syncbuf_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/commentflow/commentflow/devstack/syncbuf"
)

// Lines written at once from many goroutines come out whole, into the
// buffer itself or into To (run with -race: the writes are serialized).
func TestWritesAreWholeAndSerialized(t *testing.T) {
	var to bytes.Buffer
	for _, b := range []*syncbuf.Buffer{{}, {To: &to}} {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range 50 {
					_, _ = b.Write([]byte("0123456789\n"))
				}
			})
		}
		wg.Wait()
		got := b.String()
		if b.To != nil {
			if got != "" {
				t.Errorf("String() = %q with To set, want nothing", got)
			}
			got = to.String()
		}
		if n := strings.Count(got, "0123456789\n"); n != 1000 || len(got) != 11000 {
			t.Errorf("%d whole lines in %d bytes, want 1000 in 11000", n, len(got))
		}
	}
}
