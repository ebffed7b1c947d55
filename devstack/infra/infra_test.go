package infra_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// the mongo driver's and FerretDB's package-level background workers
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("github.com/FerretDB/FerretDB/internal/util/state.(*Provider).Subscribe.func1"),
		goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"),
	)
}

func TestStackServesAllThreeProtocols(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := infra.StartT(t, infra.Options{})

	// Kafka: the default topics exist with their partition counts.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	topics, err := kadm.NewClient(kcl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range infra.DefaultTopics() {
		td, ok := topics[name]
		if !ok {
			t.Fatalf("topic %q missing; have %v", name, topics.Names())
		}
		if got := len(td.Partitions); got != int(want) {
			t.Errorf("topic %q: %d partitions, want %d", name, got, want)
		}
	}
	if err := kcl.ProduceSync(ctx, &kgo.Record{Topic: "comments", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// Schema registry on its own port.
	rcl, err := sr.NewClient(sr.URLs(st.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := rcl.CreateSchema(ctx, "t-value", sr.Schema{Schema: `"string"`, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if ss.ID < 1 {
		t.Fatalf("schema id %d", ss.ID)
	}

	// MongoDB wire protocol, and an outage that keeps data and address.
	mc := connect(t, st.MongoURI())
	coll := mc.Database("t").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := st.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.DialContext(ctx, "tcp", st.MongoURI()[len("mongodb://"):len(st.MongoURI())-1]); err == nil {
		_ = c.Close()
		t.Fatal("database still accepts connections after StopMongo")
	}
	if err := st.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count after restart: %v", err)
	}
	if n != 1 {
		t.Fatalf("after restart: %d documents, want 1", n)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	st, err := infra.Start(ctx, infra.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kcl, _ := kgo.NewClient(kgo.SeedBrokers(st.KafkaAddr()))
	if err := kcl.ProduceSync(ctx, &kgo.Record{Topic: "comments", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kcl.Close()
	rcl, _ := sr.NewClient(sr.URLs(st.RegistryURL()))
	ss, err := rcl.CreateSchema(ctx, "t-value", sr.Schema{Schema: `"string"`, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	mc := connect(t, st.MongoURI())
	if _, err := mc.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	_ = mc.Disconnect(ctx)
	st.Close()

	st = infra.StartT(t, infra.Options{DataDir: dir})
	if recs := kafkatest.ReadN(ctx, t, "comments", 1, kgo.SeedBrokers(st.KafkaAddr())); len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("records after restart: %v", recs)
	}
	rcl, _ = sr.NewClient(sr.URLs(st.RegistryURL()))
	got, err := rcl.SchemaByID(ctx, ss.ID)
	if err != nil || got.Schema != `"string"` {
		t.Fatalf("schema %d after restart: %v %v", ss.ID, got, err)
	}
	n, err := connect(t, st.MongoURI()).Database("t").Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("documents after restart: %d %v", n, err)
	}
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	mc, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return mc
}
