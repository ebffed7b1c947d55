package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/consumer/internal/store"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/platform/ops"
	"github.com/commentflow/commentflow/schemas"
)

// Three members of one group share the partitions; every event is stored
// exactly once and every offset is committed.
func TestExactlyOnceWithThreeInstances(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	ev.produce(300)
	var ins []*instance
	for _, name := range []string{"a", "b", "c"} {
		ins = append(ins, s.start(name, s.env()))
	}
	s.waitSpread(3)
	wait := ev.stream(600, 400)
	wait()
	s.waitAllStored(ev)
	n := len(ev.expected())

	var consumed, stored, dups float64
	for _, in := range ins {
		c := in.metric(t, "commentflow_consumer_records_consumed_total")
		if c == 0 {
			t.Errorf("instance %s consumed nothing: the partitions were not shared", in.name)
		}
		consumed += c
		stored += in.metric(t, "commentflow_consumer_documents_stored_total")
		dups += in.metric(t, "commentflow_consumer_duplicates_skipped_total")
	}
	if int(stored) != n || stored+dups != consumed {
		t.Errorf("metrics: consumed %v, stored %v, duplicates %v; want stored %d = consumed - duplicates", consumed, stored, dups, n)
	}
	// Every service's metrics: commentflow_build_info, and only its own
	// commentflow_consumer_* (the client's kprom series too) beside the
	// standard collectors.
	if err := ops.CheckNames("consumer", ins[0].scrape(t)); err != nil {
		t.Error(err)
	}
	if ins[0].metric(t, "commentflow_consumer_kafka_fetch_bytes_total") == 0 {
		t.Error("no Kafka client metrics (kprom) under commentflow_consumer_kafka_")
	}
	for _, in := range ins {
		if err := in.stop(); err != nil {
			t.Errorf("%s: Run returned %v", in.name, err)
		}
	}
}

// Poison mixed into the stream goes to the dead-letter topic, unchanged,
// with headers saying why and where from; every valid event is stored and
// the committed offsets move past the poison.
func TestPoisonGoesToTheDeadLetterTopic(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	valid := func() schemas.Comment { return ev.comment() }
	encode := func(c schemas.Comment) []byte {
		b, err := schemas.NewEncoder(ev.enc.SchemaID()).Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	random := make([]byte, 64)
	for i := range random {
		random[i] = byte(rand.IntN(256))
	}
	random[0] = 0xA7 // not the magic byte
	poison := []struct {
		name  string
		value []byte
		class schemas.ErrorClass
	}{
		{"random bytes", random, schemas.ClassBadFraming},
		{"wrong magic byte", append([]byte{1}, encode(valid())[1:]...), schemas.ClassBadFraming},
		{"shorter than the header", []byte{0, 0, 1}, schemas.ClassBadFraming},
		{"empty value", nil, schemas.ClassBadFraming},
		{"unknown schema id", schemas.Frame(987654, encode(valid())[5:]), schemas.ClassUnknownSchema},
		{"truncated avro", func() []byte { b := encode(valid()); return b[:len(b)/2] }(), schemas.ClassAvroDecode},
		{"empty text", encode(func() schemas.Comment { c := valid(); c.Text = ""; return c }()), schemas.ClassInvalid},
		{"non-uuid id", encode(func() schemas.Comment { c := valid(); c.ID = "comment-1"; return c }()), schemas.ClassInvalid},
		{"trailing bytes", append(encode(valid()), 0, 0), schemas.ClassAvroDecode},
		{"NUL in name", encode(func() schemas.Comment { c := valid(); c.Name = "Ada\x00"; return c }()), schemas.ClassInvalid},
		{"year 10000", encode(func() schemas.Comment {
			c := valid()
			c.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return c
		}()), schemas.ClassInvalid},
	}

	// Every partition gets valid events, then each poison record twice
	// with valid events between, ending with poison.
	type sent struct {
		key, value []byte
		class      schemas.ErrorClass
		name       string
	}
	bySource := map[string]sent{} // "partition/offset"
	ev.produce(150)
	for round := range 2 {
		for _, p := range poison {
			key := []byte(ev.posts[rand.IntN(len(ev.posts))])
			rec := &kgo.Record{Key: key, Value: p.value, Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}}
			s.produce(rec)
			bySource[fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)] = sent{key, p.value, p.class, p.name}
			if round == 0 {
				ev.produce(10)
			}
		}
	}
	for p := range int32(schemas.Partitions) {
		rec := &kgo.Record{Partition: p, Value: []byte("trailing poison")}
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(schemas.Topic))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		bySource[fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)] = sent{nil, rec.Value, schemas.ClassBadFraming, "trailing"}
	}

	in := s.start("a", s.env())
	s.waitAllStored(ev)

	// The dead-letter topic holds exactly the poison, unchanged.
	letters := s.readDLQ(len(bySource))
	classes := map[schemas.ErrorClass]int{}
	for _, r := range letters {
		h := func(k string) string { v, _ := dlq.Header(r, k); return v }
		src := h(dlq.HeaderPartition) + "/" + h(dlq.HeaderOffset)
		p, ok := bySource[src]
		if !ok {
			t.Errorf("dead letter from %s is not one of the poison records", src)
			continue
		}
		delete(bySource, src)
		classes[p.class]++
		if string(r.Value) != string(p.value) || string(r.Key) != string(p.key) {
			t.Errorf("%s: dead letter key/value changed: %q/%q, want %q/%q", p.name, r.Key, r.Value, p.key, p.value)
		}
		if got := h(dlq.HeaderClass); got != string(p.class) {
			t.Errorf("%s: error.class = %q, want %q", p.name, got, p.class)
		}
		if h(dlq.HeaderMessage) == "" || h(dlq.HeaderTopic) != schemas.Topic || h(dlq.HeaderGroup) != s.group {
			t.Errorf("%s: headers %v", p.name, r.Headers)
		}
		if _, err := time.Parse(time.RFC3339, h(dlq.HeaderTime)); err != nil {
			t.Errorf("%s: dlq.time: %v", p.name, err)
		}
		if h("origin") != "test" && p.name != "trailing" {
			t.Errorf("%s: the original headers were not kept: %v", p.name, r.Headers)
		}
	}
	for src, p := range bySource {
		t.Errorf("poison %q at %s was not dead-lettered", p.name, src)
	}
	for class, n := range classes {
		if got := in.metric(t, "commentflow_consumer_dead_lettered_total", `class="`+string(class)+`"`); int(got) != n {
			t.Errorf("dead_lettered_total{class=%q} = %v, want %d", class, got, n)
		}
	}
}

// readDLQ reads n records from the dead-letter topic, and checks there are
// no more.
func (s *stack) readDLQ(n int) []*kgo.Record {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out := kafkatest.ReadN(ctx, s.t, schemas.DLQTopic, n, kgo.SeedBrokers(s.KafkaAddr()))
	_, total := kafkatest.EndOffsets(ctx, s.t, schemas.DLQTopic, kgo.SeedBrokers(s.KafkaAddr()))
	if int(total) != n || len(out) != n {
		s.t.Errorf("%s holds %d records (read %d), want %d", schemas.DLQTopic, total, len(out), n)
	}
	return out
}

// A comment the database refuses for good (here: it clashes on a second
// unique index, not on _id) goes to the dead-letter topic with class
// "store"; it is not counted as already stored, and the records after it
// are stored and committed.
func TestStoreRefusalGoesToTheDeadLetterTopic(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := s.coll().Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "address", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	ev := s.events()
	first := ev.comment()
	ev.s.produce(ev.record(first))
	ev.produce(20)
	in := s.start("a", s.env())
	s.waitCount(21)

	clash := ev.comment()
	clash.Address = first.Address
	v, err := ev.enc.Encode(&clash)
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Key: []byte(clash.PostID), Value: v}
	s.produce(rec)
	ev.produce(20)
	s.waitAllStored(ev)

	letters := s.readDLQ(1)
	if got, _ := dlq.Header(letters[0], dlq.HeaderClass); got != store.ErrorClass {
		t.Errorf("error.class = %q, want %q", got, store.ErrorClass)
	}
	if got, _ := dlq.Header(letters[0], dlq.HeaderOffset); got != strconv.FormatInt(rec.Offset, 10) {
		t.Errorf("dead letter of offset %s, want the clash at %d", got, rec.Offset)
	}
	if n, err := s.coll().CountDocuments(ctx, bson.D{{Key: "_id", Value: clash.ID}}); err != nil || n != 0 {
		t.Errorf("the clash is stored (%d, %v)", n, err)
	}
	if got := in.metric(t, "commentflow_consumer_dead_lettered_total", `class="store"`); got != 1 {
		t.Errorf("dead_lettered_total{class=store} = %v, want 1", got)
	}
}

// The same comment sent once with upper-case UUIDs and once with lower-case
// ones is one comment (issue 12): one document, under the lower-case id
// (RFC 9562's form, the one the API looks up), the second copy counted as
// already stored; the comments after them are stored too.
func TestBothSpellingsOfAUUIDAreOneComment(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	c := ev.comment()
	upper := c
	upper.ID, upper.PostID = strings.ToUpper(c.ID), strings.ToUpper(c.PostID)
	v, err := ev.enc.Encode(&upper)
	if err != nil {
		t.Fatal(err)
	}
	s.produce(&kgo.Record{Key: []byte(c.PostID), Value: v}, ev.record(c)) // one partition, upper case first
	ev.produce(20)
	in := s.start("a", s.env())
	s.waitAllStored(ev) // c under its lower-case id, once
	if got := in.metric(t, "commentflow_consumer_duplicates_skipped_total"); got != 1 {
		t.Errorf("duplicates_skipped_total = %v, want 1 (the second spelling)", got)
	}
}
