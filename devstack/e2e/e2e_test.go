// Package e2e runs the whole system — the real producer, consumer and
// gateway binaries as processes over devstack's in-process Kafka, schema
// registry and MongoDB — and checks the product's promises end to end.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/procs"
	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas"
)

// bins are the service binaries, built once for all tests.
var bins map[string]string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (they build and run every service)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "commentflow-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := procs.RepoRoot()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		bins, err = procs.Build(ctx, root, dir, nil)
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the services:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// logSink sends the services' logs to the test log only when it fails,
// keeping -v output readable.
type logSink struct {
	t   testing.TB
	buf bytes.Buffer
}

func (l *logSink) Write(b []byte) (int, error) { return l.buf.Write(b) }

func start(t testing.TB, cfg system.Config) *system.System {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	sink := &logSink{t: t}
	cfg.Bins, cfg.Out = bins, sink
	// A killed consumer's partitions move after the session timeout; the
	// default 45s would only make the crash test slow.
	cfg.ConsumerEnv = append(cfg.ConsumerEnv, "KAFKA_SESSION_TIMEOUT=8s")
	// The stand-in database has no index: a page sorts the whole
	// collection, which took over the gateway's default 5s per query
	// under -race on a busy machine (every retry of a walk answered 503
	// for two minutes). The tests measure correctness, not the database's
	// speed; only the gateway reads these variables (the write timeout
	// must exceed the database's; both stay under the client's
	// attemptTimeout).
	cfg.Env = append(cfg.Env, "GATEWAY_DB_TIMEOUT=20s", "GATEWAY_WRITE_TIMEOUT=25s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := system.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() {
		sys.Stop()
		if t.Failed() {
			t.Logf("service logs (last 200 lines):\n%s", tail(sink.buf.String(), 200))
		}
	})
	return sys
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// produced reads the comments on the topic — the ground truth of what the
// producer had acknowledged — from the start until it has at least want
// and has reached the end the topic had when reading began.
func produced(t *testing.T, sys *system.System, want int) map[string]schemas.Comment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, end := kafkatest.EndOffsets(ctx, t, schemas.Topic, kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	dec := decoder(t, sys)
	out := map[string]schemas.Comment{}
	var read int64
	done := func() (bool, string) {
		return len(out) >= want && read >= end, fmt.Sprintf("read %d of %d comments from the topic", len(out), want)
	}
	kafkatest.Read(ctx, t, schemas.Topic, done, func(r *kgo.Record) {
		read++
		c, _, err := dec.Decode(ctx, r.Value)
		if err != nil {
			return // poison injected by a test
		}
		if string(r.Key) != c.PostID {
			t.Errorf("record key %q is not the post_id %q", r.Key, c.PostID)
		}
		if _, dup := out[c.ID]; dup {
			t.Errorf("comment %s produced twice", c.ID)
		}
		out[c.ID] = c
	}, kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	return out
}

// decoder decodes records with the system's schema registry.
func decoder(t testing.TB, sys *system.System) *schemas.Decoder {
	t.Helper()
	rcl, err := sr.NewClient(sr.URLs(sys.Infra.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewDecoder(rcl)
}

func mongoColl(t testing.TB, sys *system.System) *mongo.Collection {
	t.Helper()
	mc, err := mongo.Connect(options.Client().ApplyURI(sys.Infra.MongoURI()).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return mc.Database(schemas.Database).Collection(schemas.Collection)
}

// waitStored waits until the collection holds want documents, failing if
// it holds more (a duplicate under another id cannot exist: _id is the
// comment id) or if it stalls.
func waitStored(t *testing.T, coll *mongo.Collection, want int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var n int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		n, err = coll.CountDocuments(ctx, bson.D{})
		cancel()
		if err == nil && n == want {
			return
		}
		if n > want {
			t.Fatalf("%d documents stored, only %d produced", n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("after %s: %d documents stored, want %d", within, n, want)
}

type apiComment struct {
	ID        string    `json:"id"`
	PostID    string    `json:"post_id"`
	Name      string    `json:"name"`
	Text      string    `json:"text"`
	Address   string    `json:"address"`
	CreatedAt time.Time `json:"created_at"`
}

type page struct {
	Items      []apiComment `json:"items"`
	NextCursor *string      `json:"next_cursor"`
	Total      *int         `json:"total"`
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := fetchJSON(ctx, u, into); err != nil {
		t.Fatal(err)
	}
}

// walkAPI reads every comment through the gateway, following cursors, and
// fails on any comment seen twice.
func walkAPI(t *testing.T, sys *system.System) map[string]apiComment {
	t.Helper()
	out := map[string]apiComment{}
	next := sys.GatewayURL() + "/api/v1/comments?limit=100"
	for pages := 0; next != ""; pages++ {
		if pages > 10000 {
			t.Fatal("cursor walk does not end")
		}
		var p page
		getJSON(t, next, &p)
		for _, c := range p.Items {
			if _, dup := out[c.ID]; dup {
				t.Fatalf("comment %s returned twice by the API", c.ID)
			}
			out[c.ID] = c
		}
		next = ""
		if p.NextCursor != nil && *p.NextCursor != "" {
			next = sys.GatewayURL() + "/api/v1/comments?limit=100&cursor=" + url.QueryEscape(*p.NextCursor)
		}
	}
	return out
}

// checkExactlyOnce compares the API's comments with the produced ones,
// field by field.
func checkExactlyOnce(t *testing.T, sys *system.System, want map[string]schemas.Comment) {
	t.Helper()
	got := walkAPI(t, sys)
	if len(got) != len(want) {
		t.Errorf("API returns %d comments, %d were produced", len(got), len(want))
	}
	var missing []string
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if g.PostID != w.PostID || g.Name != w.Name || g.Text != w.Text || g.Address != w.Address || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("comment %s differs:\n api      %+v\n produced %+v", id, g, w)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d produced comments missing from the API, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}

// committedAtEnd checks the group's committed offsets reached the end of
// every partition of the topic.
func committedAtEnd(t *testing.T, sys *system.System) {
	t.Helper()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lags, err := adm.Lag(ctx, schemas.ConsumerGroup)
		cancel()
		var total int64 = -1
		if err == nil {
			// every partition must have a commit: a missing one lags too
			if l, ok := lags[schemas.ConsumerGroup]; ok && l.Error() == nil && len(l.Lag[schemas.Topic]) == schemas.Partitions {
				total = l.Lag.TotalByTopic()[schemas.Topic].Lag
			}
		}
		if total == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s still lags %d records (err %v)", schemas.ConsumerGroup, total, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// storedExactlyOnce waits until the n produced comments are stored, then
// checks them through the API, field by field, and the group's commits.
func storedExactlyOnce(t *testing.T, sys *system.System, coll *mongo.Collection, n int, within time.Duration) {
	t.Helper()
	// A producer with a count exits 0 once all is acknowledged, and stays
	// down (the supervisor's restart delay is 1s).
	if p := sys.Producer(); p != nil {
		select {
		case <-p.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("the producer with a count did not exit")
		}
		time.Sleep(1500 * time.Millisecond)
		if code, restarts := p.ExitCode(), p.Restarts(); code != 0 || restarts != 0 {
			t.Fatalf("producer with a count: exit code %d, restarted %d times; want 0 and never", code, restarts)
		}
	}
	want := produced(t, sys, n)
	if len(want) != n {
		t.Fatalf("%d valid comments on the topic, the producer was to produce %d", len(want), n)
	}
	waitStored(t, coll, int64(n), within)
	checkExactlyOnce(t, sys, want)
	committedAtEnd(t, sys)
}

func TestProducedEventsReachTheAPIExactlyOnce(t *testing.T) {
	const n = 400
	sys := start(t, system.Config{Consumers: 3, ProducerCount: n})
	storedExactlyOnce(t, sys, mongoColl(t, sys), n, 2*time.Minute)
}

func TestConsumerKilledMidStreamStillExactlyOnce(t *testing.T) {
	const n = 1500
	sys, coll := startStreaming(t, system.Config{Consumers: 3, ProducerCount: n, Rate: 300}, 100)
	victim := sys.Consumers()[1]
	pid := victim.Pid()
	if err := victim.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, victim, pid)
	storedExactlyOnce(t, sys, coll, n, 3*time.Minute)
}

func TestConsumersScaleOneThreeOne(t *testing.T) {
	const n = 1500
	sys, coll := startStreaming(t, system.Config{Consumers: 1, ProducerCount: n, Rate: 250}, 200)
	for range 2 {
		if _, err := sys.AddConsumer(); err != nil {
			t.Fatal(err)
		}
	}
	waitAtLeast(t, coll, 700)
	for range 2 {
		if err := sys.RemoveConsumer(30 * time.Second); err != nil {
			t.Fatalf("scale in: %v", err)
		}
	}
	storedExactlyOnce(t, sys, coll, n, 3*time.Minute)
}

func TestPoisonGoesToTheDLQAndTheStreamGoesOn(t *testing.T) {
	const n = 300
	sys, coll := startStreaming(t, system.Config{Consumers: 3, ProducerCount: n, Rate: 200}, 50)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	poison := map[string][]byte{
		"bad_framing":    []byte("not avro at all"),
		"unknown_schema": schemas.Frame(424242, []byte{2, 'x'}),
		"avro_decode":    schemas.Frame(1, []byte{0x80}),
	}
	var recs []*kgo.Record
	for class, v := range poison {
		recs = append(recs, &kgo.Record{Topic: schemas.Topic, Key: []byte("poison-" + class), Value: v})
	}
	produceRecords(ctx, t, sys, recs...)

	// Every poison record reaches the DLQ with its class and its bytes.
	seen := map[string]bool{}
	done := func() (bool, string) {
		return len(seen) >= len(poison), fmt.Sprintf("DLQ holds %v of the %d poison records", seen, len(poison))
	}
	kafkatest.Read(ctx, t, schemas.DLQTopic, done, func(r *kgo.Record) {
		class := strings.TrimPrefix(string(r.Key), "poison-")
		want, ok := poison[class]
		if !ok {
			t.Errorf("unexpected DLQ record key %q", r.Key)
			return
		}
		if !bytes.Equal(r.Value, want) {
			t.Errorf("DLQ record %s: value changed", class)
		}
		if h := header(r, "error.class"); h != class {
			t.Errorf("DLQ record %s: error.class %q", class, h)
		}
		seen[class] = true
	}, kgo.SeedBrokers(sys.Infra.KafkaAddr()))

	// The stream went on: every valid comment is stored, none of the poison.
	storedExactlyOnce(t, sys, coll, n, 2*time.Minute)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestRestartOnTheSameDataKeepsEverythingOnce(t *testing.T) {
	const n = 300
	dir := filepath.Join(t.TempDir(), "data")
	sys := start(t, system.Config{DataDir: dir, Consumers: 3, ProducerCount: n})
	want := produced(t, sys, n)
	waitStored(t, mongoColl(t, sys), n, 2*time.Minute)
	committedAtEnd(t, sys)
	sys.Stop()

	sys = start(t, system.Config{DataDir: dir, Consumers: 3, NoProducer: true})
	coll := mongoColl(t, sys)
	committedAtEnd(t, sys) // offsets survived: nothing to replay
	// Give the consumers time to (wrongly) replay, then check nothing moved.
	time.Sleep(3 * time.Second)
	waitStored(t, coll, n, 10*time.Second)
	checkExactlyOnce(t, sys, want)

	// And the restarted stack still ingests: more events on top.
	if _, err := sys.StartProducer(100); err != nil {
		t.Fatal(err)
	}
	waitStored(t, coll, n+100, 2*time.Minute)
	checkExactlyOnce(t, sys, produced(t, sys, n+100))
}

// waitRestarted waits until the supervisor has restarted p, whose process
// pid was killed, as restart: unless-stopped would.
func waitRestarted(t *testing.T, p *procs.Proc, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); p.Restarts() == 0 || p.Pid() == pid; {
		if time.Now().After(deadline) {
			t.Fatal("killed consumer was not restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produceRecords produces recs (records a test makes by hand, like poison)
// with a client of its own.
func produceRecords(ctx context.Context, t *testing.T, sys *system.System, recs ...*kgo.Record) {
	t.Helper()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(sys.Infra.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startStreaming starts the system with cfg, producing, and waits until at
// least atLeast comments are stored.
func startStreaming(t *testing.T, cfg system.Config, atLeast int64) (*system.System, *mongo.Collection) {
	t.Helper()
	sys := start(t, cfg)
	coll := mongoColl(t, sys)
	waitAtLeast(t, coll, atLeast)
	return sys, coll
}

func waitAtLeast(t *testing.T, coll *mongo.Collection, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := coll.CountDocuments(ctx, bson.D{})
		cancel()
		if err == nil && got >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("fewer than %d documents stored after 2 minutes", n)
}
