// Package syncbuf is a writer that several goroutines may use at once: a
// bytes.Buffer that a process writes to while a test reads it, or a console
// that several processes write whole lines to.
package syncbuf

import (
	"bytes"
	"io"
	"sync"
)

// Buffer serializes its writes. They go to To when it is set, else to the
// buffer's own bytes.Buffer, which String reads. The zero value is an empty
// buffer ready to use.
type Buffer struct {
	To io.Writer

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write writes p whole, after any write in progress.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.To != nil {
		return b.To.Write(p)
	}
	return b.buf.Write(p)
}

// String returns what was written to the buffer so far (nothing when the
// writes go to To).
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
