package mongoconn_test

import (
	"testing"

	"github.com/commentflow/commentflow/platform/mongoconn"
)

// A service's own transient codes are added to its copy only: the consumer's
// and the gateway's differences never leak into the shared list or into
// each other's.
func TestTransientCodesWithKeepsTheSharedListApart(t *testing.T) {
	before := len(mongoconn.TransientCodes)
	a := mongoconn.TransientCodesWith(map[int]string{1: "InternalError"})
	b := mongoconn.TransientCodesWith(map[int]string{237: "CursorKilled"})
	if a[1] != "InternalError" || b[237] != "CursorKilled" || a[6] != "HostUnreachable" || b[6] != "HostUnreachable" {
		t.Errorf("TransientCodesWith lost a code: %v, %v", a, b)
	}
	if _, ok := b[1]; ok {
		t.Errorf("one service's code 1 leaked into another's list: %v", b)
	}
	if len(mongoconn.TransientCodes) != before || mongoconn.TransientCodes[1] != "" || mongoconn.TransientCodes[237] != "" {
		t.Errorf("TransientCodesWith changed the shared list: %v", mongoconn.TransientCodes)
	}
}
