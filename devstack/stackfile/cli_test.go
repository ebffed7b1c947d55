package stackfile

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every service keeps the same command-line contract (platform/cli.Main):
// one table, run against each of the three binaries.
func TestEveryServiceAnswersTheSameCommandLine(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer healthy.Close()
	_, healthyPort, err := net.SplitHostPort(healthy.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	_, closedPort, _ := net.SplitHostPort(closed.Listener.Addr().String())
	closed.Close()

	type want struct {
		code   int
		stdout []string // substrings of stdout, %s = the service's name
		stderr string   // substring of the one-line stderr; "" = stderr empty
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want want
	}{
		{"--version", nil, []string{"--version"}, want{0, []string{"%s " + versionProbe + "\n"}, ""}},
		{"-version", nil, []string{"-version"}, want{0, []string{"%s " + versionProbe + "\n"}, ""}},
		{"version", nil, []string{"version"}, want{0, []string{"%s " + versionProbe + "\n"}, ""}},
		{"--help", nil, []string{"--help"}, want{0, []string{"VARIABLE", "HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"}, ""}},
		{"-h", nil, []string{"-h"}, want{0, []string{"VARIABLE", "HTTP_ADDR"}, ""}},
		{"unknown flag", nil, []string{"--no-such-flag"}, want{2, nil, "%s: "}},
		{"stray argument", nil, []string{"stray"}, want{2, nil, "%s: "}},
		{"bad variable", []string{"LOG_LEVEL=loud"}, nil, want{2, nil, "LOG_LEVEL"}},
		{"healthcheck healthy", []string{"HTTP_ADDR=127.0.0.1:" + healthyPort}, []string{"healthcheck"}, want{0, []string{"healthy"}, ""}},
		{"healthcheck --http-addr", nil, []string{"healthcheck", "--http-addr", "127.0.0.1:" + healthyPort}, want{0, []string{"healthy"}, ""}},
		{"healthcheck down", []string{"HTTP_ADDR=127.0.0.1:" + closedPort}, []string{"healthcheck"}, want{1, nil, "healthcheck"}},
		{"healthcheck --help", nil, []string{"healthcheck", "--help"}, want{0, []string{"HTTP_ADDR"}, ""}},
		{"healthcheck bad address", []string{"HTTP_ADDR=nonsense"}, []string{"healthcheck"}, want{2, nil, "HTTP_ADDR"}},
	}
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			bin := serviceBinary(t, name)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					var out, errOut strings.Builder
					code := runTo(t, bin, tc.env, &out, &errOut, tc.args...)
					stdout, stderr := out.String(), errOut.String()
					if code != tc.want.code {
						t.Fatalf("%s %s: exit %d, want %d\nstdout: %s\nstderr: %s", name, strings.Join(tc.args, " "), code, tc.want.code, stdout, stderr)
					}
					for _, s := range tc.want.stdout {
						s = strings.ReplaceAll(s, "%s", name)
						if !strings.Contains(stdout, s) {
							t.Errorf("%s %s: stdout lacks %q:\n%s", name, strings.Join(tc.args, " "), s, stdout)
						}
					}
					switch w := strings.ReplaceAll(tc.want.stderr, "%s", name); {
					case w == "" && stderr != "":
						t.Errorf("%s %s: stderr should be empty, got %q", name, strings.Join(tc.args, " "), stderr)
					case w != "":
						if !strings.Contains(stderr, w) {
							t.Errorf("%s %s: stderr %q lacks %q", name, strings.Join(tc.args, " "), stderr, w)
						}
						if n := strings.Count(strings.TrimSuffix(stderr, "\n"), "\n"); n != 0 {
							t.Errorf("%s %s: stderr is %d lines, want one:\n%s", name, strings.Join(tc.args, " "), n+1, stderr)
						}
						if !strings.HasPrefix(stderr, name) {
							t.Errorf("%s %s: stderr %q does not start with the service's name", name, strings.Join(tc.args, " "), stderr)
						}
					}
				})
			}
		})
	}
}
