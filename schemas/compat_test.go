package schemas_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/commentflow/commentflow/schemas"
)

// confluentClient is a client of reg that reads a subject's own
// compatibility level the way Confluent's registry and Redpanda answer
// by default (defaultToGlobal=false: 404 when the subject has none).
// srfake answers the global level unless told otherwise, so the test's
// client tells it.
func confluentClient(t *testing.T, reg *srfake.Registry) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(reg.URL()), sr.PreReq(func(req *http.Request) error {
		if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/config/") {
			q := req.URL.Query()
			if q.Get("defaultToGlobal") == "" {
				q.Set("defaultToGlobal", "false")
				req.URL.RawQuery = q.Encode()
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func subjectLevel(t *testing.T, cl *sr.Client) sr.CompatibilityLevel {
	t.Helper()
	res := cl.Compatibility(context.Background(), schemas.Subject)
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("subject compatibility: %+v", res)
	}
	return res[0].Level
}

// An operator's stricter level on the subject is kept, not lowered to
// BACKWARD.
func TestRegisterKeepsTheOperatorsCompatibility(t *testing.T) {
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl := confluentClient(t, reg)
	for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFullTransitive}, schemas.Subject) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	r := schemas.NewRegistry(cl)
	if _, err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjectLevel(t, cl); got != sr.CompatFullTransitive {
		t.Fatalf("subject compatibility is %s after Register, the operator set FULL_TRANSITIVE", got)
	}
	if level, set := r.Compatibility(); level != "FULL_TRANSITIVE" || set {
		t.Errorf("Compatibility() = %s, %v; want FULL_TRANSITIVE, false", level, set)
	}
}

// A subject with no level of its own gets BACKWARD, whatever the global
// level, and whatever the registry answers by default for a subject
// without one: Confluent's and Redpanda's 404 (defaultToGlobal=false), or
// srfake's global level (the devstack's registry), which Register must not
// take for the subject's own.
func TestRegisterSetsBackwardWhenTheSubjectHasNone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(*testing.T, *srfake.Registry) *sr.Client
	}{
		{"404 for no level of its own", confluentClient},
		{"the global level for no level of its own", func(t *testing.T, reg *srfake.Registry) *sr.Client {
			t.Helper()
			cl, err := sr.NewClient(sr.URLs(reg.URL()))
			if err != nil {
				t.Fatal(err)
			}
			return cl
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg := srfake.New(srfake.WithGlobalCompat(sr.CompatNone))
			t.Cleanup(reg.Close)
			cl := tc.client(t, reg)
			r := schemas.NewRegistry(cl)
			if _, err := r.Register(ctx); err != nil {
				t.Fatal(err)
			}
			if got := subjectLevel(t, confluentClient(t, reg)); got != sr.CompatBackward {
				t.Fatalf("subject compatibility is %s, want BACKWARD", got)
			}
			if level, set := r.Compatibility(); level != "BACKWARD" || !set {
				t.Errorf("Compatibility() = %s, %v; want BACKWARD, true", level, set)
			}
		})
	}
}
