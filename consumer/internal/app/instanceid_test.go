package app

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestResolveInstanceID(t *testing.T) {
	host := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	tests := []struct {
		name, id string
		hostname func() (string, error)
		want     string
		wantErr  string
	}{
		{"a literal id is itself", "consumer-2", host("ignored", nil), "consumer-2", ""},
		{"empty stays dynamic", "", host("ignored", nil), "", ""},
		{"@hostname is the host name", "@hostname", host("3f9c2a1b7d4e", nil), "3f9c2a1b7d4e", ""},
		{"a host name that cannot be an id", "@hostname", host("bad name", nil), "", "only letters"},
		{"no host name", "@hostname", host("", nil), "", "empty"},
		{"the host name cannot be read", "@hostname", host("", errors.New("boom")), "", "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveInstanceID(tt.id, tt.hostname)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveInstanceID(%q) = %q, %v; want an error containing %q", tt.id, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolveInstanceID(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
			}
		})
	}
	// The real host name passes the configuration check (it does in a
	// container: the container id is hex).
	if h, err := os.Hostname(); err == nil && checkInstanceID(h) == nil {
		if err := checkInstanceID(hostnameInstanceID); err != nil {
			t.Errorf("checkInstanceID(%q) on host %q: %v", hostnameInstanceID, h, err)
		}
	}
}
