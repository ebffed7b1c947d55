package schemas

import (
	"testing"

	"github.com/google/uuid"
)

// isUUID must accept exactly what uuid.Parse accepts at 36 characters: every
// single-byte change of valid lower- and upper-case ids, at every position,
// to every byte value.
func TestIsUUIDMatchesUUIDParse(t *testing.T) {
	for _, valid := range []string{"01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e1f", "ABCDEF01-2345-6789-ABCD-EF0123456789", "00000000-0000-0000-0000-000000000000"} {
		for i := range len(valid) {
			for c := range 256 {
				b := []byte(valid)
				b[i] = byte(c)
				s := string(b)
				_, err := uuid.Parse(s)
				if got, want := isUUID(s), err == nil; got != want {
					t.Fatalf("isUUID(%q) = %v, uuid.Parse accepts: %v", s, got, want)
				}
			}
		}
	}
	for _, s := range []string{"", "01936b2e7c4a7b3e9f1d2a4b6c8d0e1f", "{01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e1f}", "urn:uuid:01936b2e-7c4a-7b3e-9f1d-2a4b6c8d0e1f"} {
		if isUUID(s) {
			t.Errorf("isUUID(%q) accepts a non-canonical form", s)
		}
	}
}
