package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/commentflow/commentflow/consumer/internal/app"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/devstack/poll"
	"github.com/commentflow/commentflow/platform/cli"
	"github.com/commentflow/commentflow/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// the mongo driver's and FerretDB's package-level background workers
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("github.com/FerretDB/FerretDB/internal/util/state.(*Provider).Subscribe.func1"),
		goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"),
		goleak.Cleanup(func(code int) {
			if build.dir != "" {
				_ = os.RemoveAll(build.dir)
			}
			os.Exit(code)
		}),
	)
}

// httpc talks to the instances' ops endpoints without keeping connections.
var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(t testing.TB, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return httpc.Do(req)
}

// testTimeout bounds every wait of a test; -race on 2 shared cores is slow.
const testTimeout = 90 * time.Second

// stack is the infrastructure of one test plus its clients.
type stack struct {
	*infra.Stack
	t     testing.TB
	db    string
	group string
	kcl   *kgo.Client
	adm   *kadm.Client
	rcl   *sr.Client
	mongo *mongo.Client
}

// ferretMu serializes starting FerretDB: ferretdb.New writes a package
// variable, so parallel tests starting their stacks at once race.
var ferretMu sync.Mutex

func newStack(t testing.TB) *stack {
	t.Helper()
	ferretMu.Lock()
	st := infra.StartT(t, infra.Options{})
	ferretMu.Unlock()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()), kgo.DefaultProduceTopic(schemas.Topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	rcl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(st.MongoURI()).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{Stack: st, t: t, db: "t" + strconv.Itoa(rand.IntN(1e9)), group: "g-" + t.Name(),
		kcl: kcl, adm: kadm.NewClient(kcl), rcl: rcl, mongo: mc}
	t.Cleanup(func() {
		kcl.Close()
		_ = mc.Disconnect(context.Background())
	})
	return s
}

// StartMongo restarts the database after StopMongo (see ferretMu).
func (s *stack) StartMongo(ctx context.Context) error {
	ferretMu.Lock()
	defer ferretMu.Unlock()
	return s.Stack.StartMongo(ctx)
}

func (s *stack) coll() *mongo.Collection {
	return s.mongo.Database(s.db).Collection(schemas.Collection)
}

// registryDown makes the registry answer every schema lookup by ID with 503
// Service Unavailable while the returned flag is set; it starts set.
func (s *stack) registryDown() *atomic.Bool {
	down := new(atomic.Bool)
	down.Store(true)
	s.Registry.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			http.Error(w, `{"error_code":50001,"message":"unavailable"}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	return down
}

// env is the consumer's environment for this stack.
func (s *stack) env(extra ...string) map[string]string {
	e := map[string]string{
		"KAFKA_BROKERS":       s.KafkaAddr(),
		"SCHEMA_REGISTRY_URL": s.RegistryURL(),
		// fail attempts fast while the database is stopped
		"MONGODB_URI":            s.MongoURI() + "?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
		"MONGODB_DATABASE":       s.db,
		"CONSUMER_GROUP":         s.group,
		"CONSUMER_BATCH_SIZE":    "100",
		"CONSUMER_BATCH_TIMEOUT": "100ms",
		"HTTP_ADDR":              "127.0.0.1:0",
		"LOG_LEVEL":              "debug",
		"STARTUP_TIMEOUT":        "30s",
		"SHUTDOWN_TIMEOUT":       "20s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i]] = extra[i+1]
	}
	return e
}

// logs collects an instance's output, prints it if the test fails, and
// finds the ops address in it.
type logs struct {
	name      string
	mu        sync.Mutex
	buf       bytes.Buffer
	addr      chan string
	sent      bool
	consuming chan struct{} // closed at the "consuming" line
	closed    bool
}

func newLogs(t testing.TB, name string) *logs {
	l := &logs{name: name, addr: make(chan string, 1), consuming: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CONSUMER_TEST_LOGS") != "" {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("---- %s output ----\n%s", l.name, l.buf.String())
		}
	})
	return l
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.closed {
		sc := bufio.NewScanner(bytes.NewReader(p))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch {
			case line.Msg == "listening" && !l.sent:
				l.addr <- line.Addr
				l.sent = true
			case line.Msg == "consuming":
				close(l.consuming)
				l.closed = true
			}
		}
	}
	return len(p), nil
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// instance is a consumer running in-process through cli.Run.
type instance struct {
	name   string
	addr   string
	logs   *logs
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func (s *stack) start(name string, env map[string]string) *instance {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{name: name, logs: newLogs(s.t, name), cancel: cancel, done: make(chan error, 1)}
	go func() {
		in.done <- cli.Run(ctx, app.Service(), "test", nil, func(k string) string { return env[k] }, in.logs, in.logs)
	}()
	s.t.Cleanup(func() { _ = in.stop() })
	select {
	case <-in.logs.consuming:
		in.addr = <-in.logs.addr
	case err := <-in.done:
		s.t.Fatalf("%s exited at startup: %v", name, err)
	case <-time.After(testTimeout):
		s.t.Fatalf("%s did not start", name)
	}
	return in
}

// stop cancels the instance (SIGTERM) and returns what Run returned.
func (in *instance) stop() error {
	in.once.Do(func() {
		in.cancel()
		select {
		case in.err = <-in.done:
		case <-time.After(testTimeout):
			in.err = fmt.Errorf("%s did not stop", in.name)
		}
	})
	return in.err
}

// readyz returns the /readyz status code and its checks.
func (in *instance) readyz(t testing.TB) (int, map[string]string) {
	t.Helper()
	resp, err := get(t, "http://"+in.addr+"/readyz")
	if err != nil {
		t.Fatalf("%s /readyz: %v", in.name, err)
	}
	defer resp.Body.Close()
	var body struct{ Checks map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s /readyz body: %v", in.name, err)
	}
	return resp.StatusCode, body.Checks
}

// metric is the sum of the samples of a metric whose labels contain every
// one of labels (like `class="invalid"`).
func (in *instance) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	sum, _ := in.metrics(t, name, labels...)
	return sum
}

// scrape is the instance's /metrics body.
func (in *instance) scrape(t testing.TB) string {
	t.Helper()
	resp, err := get(t, "http://"+in.addr+"/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", in.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metrics is the sum and the number of the samples metric adds up.
func (in *instance) metrics(t testing.TB, name string, labels ...string) (sum float64, n int) {
	t.Helper()
	for line := range strings.Lines(in.scrape(t)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && match {
			sum += v
			n++
		}
	}
	return sum, n
}

// events makes and produces valid comments.
type events struct {
	s     *stack
	enc   *schemas.Encoder
	posts []string
	mu    sync.Mutex
	sent  map[string]schemas.Comment // by id
	seq   atomic.Int64
}

func (s *stack) events() *events {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	id, err := schemas.NewRegistry(s.rcl).Register(ctx)
	if err != nil {
		s.t.Fatalf("register schema: %v", err)
	}
	e := &events{s: s, enc: schemas.NewEncoder(id), sent: map[string]schemas.Comment{}}
	for range 30 {
		e.posts = append(e.posts, uuid.NewString())
	}
	return e
}

func (e *events) comment() schemas.Comment {
	n := e.seq.Add(1)
	return schemas.Comment{
		ID:        uuid.Must(uuid.NewV7()).String(),
		PostID:    e.posts[rand.IntN(len(e.posts))],
		Name:      fmt.Sprintf("Author %d", n%97),
		Text:      fmt.Sprintf("comment number %d", n),
		Address:   fmt.Sprintf("%d Main Street, Springfield", n),
		CreatedAt: time.UnixMilli(time.Now().UnixMilli()).UTC(),
	}
}

// record encodes c (keyed by its post, as the producer does) and
// remembers it as expected in the database.
func (e *events) record(c schemas.Comment) *kgo.Record {
	e.s.t.Helper()
	v, err := e.enc.Encode(&c)
	if err != nil {
		e.s.t.Fatalf("encode: %v", err)
	}
	e.mu.Lock()
	e.sent[c.ID] = c
	e.mu.Unlock()
	return &kgo.Record{Key: []byte(c.PostID), Value: v}
}

// produce sends n valid comments.
func (e *events) produce(n int) {
	e.s.t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for range n {
		recs = append(recs, e.record(e.comment()))
	}
	e.s.produce(recs...)
}

// stream produces n comments at about rate per second in the background;
// wait for it with the returned function.
func (e *events) stream(n, rate int) (wait func()) {
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		per := max(rate/20, 1)
		for sent := 0; sent < n; {
			<-tick.C
			k := min(per, n-sent)
			recs := make([]*kgo.Record, 0, k)
			for range k {
				c := e.comment()
				v, err := e.enc.Encode(&c)
				if err != nil {
					done <- err
					return
				}
				e.mu.Lock()
				e.sent[c.ID] = c
				e.mu.Unlock()
				recs = append(recs, &kgo.Record{Key: []byte(c.PostID), Value: v})
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			err := e.s.kcl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				done <- err
				return
			}
			sent += k
		}
		done <- nil
	}()
	return func() {
		e.s.t.Helper()
		if err := <-done; err != nil {
			e.s.t.Fatalf("stream: %v", err)
		}
	}
}

func (e *events) expected() map[string]schemas.Comment {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]schemas.Comment, len(e.sent))
	for k, v := range e.sent {
		out[k] = v
	}
	return out
}

func (s *stack) produce(recs ...*kgo.Record) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		s.t.Fatalf("produce: %v", err)
	}
}

// count is the number of stored comments.
func (s *stack) count() int64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	n, err := s.coll().CountDocuments(ctx, bson.D{})
	if err != nil {
		s.t.Fatalf("count: %v", err)
	}
	return n
}

// waitCount waits until at least n comments are stored.
func (s *stack) waitCount(n int64) {
	s.t.Helper()
	eventually(s.t, fmt.Sprintf("%d documents stored", n), func() (bool, string) {
		got := s.count()
		return got >= n, fmt.Sprintf("%d stored", got)
	})
}

// documents reads every stored comment.
func (s *stack) documents() []store.Document {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cur, err := s.coll().Find(ctx, bson.D{})
	if err != nil {
		s.t.Fatalf("find: %v", err)
	}
	var docs []store.Document
	if err := cur.All(ctx, &docs); err != nil {
		s.t.Fatalf("find: %v", err)
	}
	return docs
}

// checkExactlyOnce checks that the stored comments are exactly the
// expected ones, field by field, each once.
func (s *stack) checkExactlyOnce(want map[string]schemas.Comment) []store.Document {
	s.t.Helper()
	docs := s.documents()
	seen := make(map[string]bool, len(docs))
	for _, d := range docs {
		if seen[d.ID] {
			s.t.Errorf("comment %s stored twice", d.ID)
		}
		seen[d.ID] = true
		c, ok := want[d.ID]
		if !ok {
			s.t.Errorf("unexpected document %+v", d)
			continue
		}
		if d.PostID != c.PostID || d.Name != c.Name || d.Text != c.Text || d.Address != c.Address || !d.CreatedAt.Equal(c.CreatedAt) {
			s.t.Errorf("document %s = %+v, want %+v", d.ID, d, c)
		}
		if d.SchemaID < 1 || d.IngestedAt.IsZero() || d.Kafka.Partition < 0 || d.Kafka.Partition >= schemas.Partitions {
			s.t.Errorf("document %s: bad metadata %+v", d.ID, d)
		}
	}
	missing := 0
	for id := range want {
		if !seen[id] {
			missing++
		}
	}
	if missing > 0 || len(docs) != len(want) {
		s.t.Errorf("stored %d documents, want %d (%d missing)", len(docs), len(want), missing)
	}
	return docs
}

// waitAllStored waits until every comment ev produced is stored and every
// offset committed, then checks that each is stored exactly once; it returns
// the stored documents.
func (s *stack) waitAllStored(ev *events) []store.Document {
	s.t.Helper()
	want := ev.expected()
	s.waitCount(int64(len(want)))
	s.waitCommittedAtEnd()
	return s.checkExactlyOnce(want)
}

// endOffsets are the high watermarks of the comments partitions.
func (s *stack) endOffsets() map[int32]int64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, _ := kafkatest.EndOffsets(ctx, s.t, schemas.Topic, kgo.SeedBrokers(s.KafkaAddr()))
	return out
}

// committed are the group's committed offsets on the comments topic
// (partitions without a commit are absent).
func (s *stack) committed() map[int32]int64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	or, err := s.adm.FetchOffsets(ctx, s.group)
	if err != nil {
		s.t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	or.Each(func(o kadm.OffsetResponse) {
		if o.Topic == schemas.Topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// waitCommittedAtEnd waits until the group committed every partition up to
// its end.
func (s *stack) waitCommittedAtEnd() {
	s.t.Helper()
	end := s.endOffsets()
	eventually(s.t, "offsets committed up to the end of every partition", func() (bool, string) {
		got := s.committed()
		for p, e := range end {
			if e > 0 && got[p] != e {
				return false, fmt.Sprintf("committed %v, end %v", got, end)
			}
		}
		return true, ""
	})
}

// waitSpread waits until the group is stable with n members, each
// assigned at least one partition.
func (s *stack) waitSpread(n int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	g, err := s.Kafka.WaitGroupInfo(ctx, s.group, func(g *kfake.GroupInfo) bool {
		if g == nil || g.State != "Stable" || len(g.Members) != n {
			return false
		}
		for i := range g.Members {
			if g.Members[i].NumAssigned() == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		s.t.Fatalf("group of %d members sharing the partitions: %v (%+v)", n, err, g)
	}
}

// eventually polls cond until it holds, failing the test at testTimeout.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, what, testTimeout, 50*time.Millisecond, cond)
}
