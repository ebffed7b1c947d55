package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/poll"
	"github.com/commentflow/commentflow/devstack/syncbuf"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/schemas"
)

func TestMain(m *testing.M) {
	throughputEvery = 200 * time.Millisecond
	plainEvery = 100 * time.Millisecond
	// Every run ends with nothing left running: the Kafka client, the ops
	// server, the reporter and the flush timer all stop.
	goleak.VerifyTestMain(m,
		// the mongo driver's and FerretDB's package-level background
		// workers, started by devstack/infra
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("github.com/FerretDB/FerretDB/internal/util/state.(*Provider).Subscribe.func1"),
		goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"),
	)
}

// instance is the producer run in-process through cli.Main.
type instance struct {
	stdout, stderr syncbuf.Buffer
	cancel         context.CancelFunc
	done           chan struct{}
	code           int
}

func startMain(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan struct{})}
	getenv := func(k string) string { return env[k] }
	go func() {
		defer close(in.done)
		in.code = cli.Main(ctx, Service(), "test", append([]string{"producer"}, args...), getenv, &in.stdout, &in.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-in.done
	})
	return in
}

// runMain runs the producer to its end and returns its exit code.
func runMain(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	in := startMain(t, env, args...)
	in.wait(t)
	return in
}

func (in *instance) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-in.done:
		return in.code
	case <-time.After(90 * time.Second):
		t.Fatalf("the producer did not exit; stdout:\n%s\nstderr:\n%s", tail(in.stdout.String()), in.stderr.String())
		return -1
	}
}

func (in *instance) logs(t *testing.T) []logLine { return parseLogs(t, in.stdout.String()) }

// opsAddr waits for the ops server to listen and returns its address.
func (in *instance) opsAddr(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, "the ops server", func() bool {
		for _, l := range in.logs(t) {
			if l.msg() == "listening" {
				addr = l.str("addr")
				return true
			}
		}
		select {
		case <-in.done:
			t.Fatalf("the producer exited with %d before listening; stderr: %s", in.code, in.stderr.String())
		default:
		}
		return false
	})
	return addr
}

type logLine map[string]any

func (l logLine) msg() string         { return l.str("msg") }
func (l logLine) str(k string) string { s, _ := l[k].(string); return s }
func (l logLine) num(k string) float64 {
	f, _ := l[k].(float64)
	return f
}

func parseLogs(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// A line cut by a concurrent read; only the last one can be.
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

func find(lines []logLine, msg string) (logLine, bool) {
	for _, l := range lines {
		if l.msg() == msg {
			return l, true
		}
	}
	return nil, false
}

// loggedEvents are the comments of the "event produced" debug lines, by id.
func loggedEvents(t *testing.T, lines []logLine) map[string]logLine {
	t.Helper()
	out := map[string]logLine{}
	for _, l := range lines {
		if l.msg() != "event produced" {
			continue
		}
		id := l.str("id")
		if _, dup := out[id]; dup {
			t.Fatalf("event %s logged as produced twice", id)
		}
		out[id] = l
	}
	return out
}

// checkTopicMatchesLog asserts that the topic holds exactly the events the
// producer logged as acknowledged, field for field.
func checkTopicMatchesLog(t *testing.T, st *infra.Stack, logged map[string]logLine) []kafkatest.Record {
	t.Helper()
	recs := kafkatest.ReadAll(t, st.KafkaAddr(), st.RegistryURL(), schemas.Topic)
	if len(recs) != len(logged) {
		t.Fatalf("topic holds %d records, the producer logged %d as produced", len(recs), len(logged))
	}
	for _, r := range recs {
		c := r.Comment
		l, ok := logged[c.ID]
		if !ok {
			t.Fatalf("record %s on the topic was not logged as produced", c.ID)
		}
		for field, want := range map[string]string{
			"post_id": c.PostID, "name": c.Name, "text": c.Text, "address": c.Address,
			"created_at": c.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		} {
			if got := l.str(field); got != want {
				t.Fatalf("event %s: logged %s %q, topic has %q", c.ID, field, got, want)
			}
		}
		if r.Key != c.PostID {
			t.Fatalf("event %s: key %q, want post_id %q", c.ID, r.Key, c.PostID)
		}
		if int32(l.num("partition")) != r.Partition || int64(l.num("offset")) != r.Offset {
			t.Fatalf("event %s: logged at %v/%v, found at %d/%d", c.ID, l["partition"], l["offset"], r.Partition, r.Offset)
		}
	}
	return recs
}

// baseEnv is a valid configuration for the stack: fast, debug-logged, on
// a random ops port.
func baseEnv(st *infra.Stack) map[string]string {
	return map[string]string{
		"KAFKA_BROKERS":       st.KafkaAddr(),
		"SCHEMA_REGISTRY_URL": st.RegistryURL(),
		"HTTP_ADDR":           "127.0.0.1:0",
		"PRODUCER_RATE":       "0",
		"LOG_LEVEL":           "debug",
		"PROGRESS":            "off",
		"STARTUP_TIMEOUT":     "20s",
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 60*time.Second, 10*time.Millisecond, func() (bool, string) { return cond(), "" })
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
