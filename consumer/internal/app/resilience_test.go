package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/commentflow/commentflow/schemas"
)

// MongoDB stopped mid-stream for several seconds: nothing is committed
// while it is down, readiness goes false then true by itself, and in the
// end every event is stored exactly once.
func TestMongoOutage(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	in := s.start("a", s.env())
	wait := ev.stream(1000, 200)
	s.waitCount(150)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	eventually(t, "/readyz to report mongodb not ready", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusServiceUnavailable && checks["mongodb"] != "ok", fmt.Sprint(code, checks)
	})
	// From now the writer is stuck on a batch: no commit may happen.
	frozen := s.committed()
	for time.Since(stopped) < 4*time.Second {
		if got := s.committed(); !maps.Equal(got, frozen) {
			t.Fatalf("offsets committed while the database is down: %v, then %v", frozen, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := in.metric(t, "commentflow_consumer_retries_total", `dependency="mongodb"`); n == 0 {
		t.Errorf("no mongodb retries counted during the outage")
	}
	if err := s.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz to report ready again", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusOK, fmt.Sprint(code, checks)
	})
	wait()
	s.waitAllStored(ev)
	if got := s.committed(); maps.Equal(got, frozen) {
		t.Errorf("offsets did not move after the outage: %v", got)
	}
	eventually(t, "no lag", func() (bool, string) {
		lag, n := in.metrics(t, "commentflow_consumer_lag")
		return lag == 0 && n == 3, fmt.Sprintf("lag %v over %d partitions", lag, n)
	})
}

// Members join and leave mid-stream (1 -> 3 -> 1): nothing lost, nothing
// stored twice, and since every member stores and commits what it polled
// before a partition can move, nothing is even redelivered.
func TestRebalanceOneThreeOne(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	a := s.start("a", s.env())
	wait := ev.stream(1200, 200)
	s.waitCount(150)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	b := s.start("b", s.env())
	c := s.start("c", s.env())
	s.waitSpread(3)
	eventually(t, "b and c to store events", func() (bool, string) {
		nb := b.metric(t, "commentflow_consumer_documents_stored_total")
		nc := c.metric(t, "commentflow_consumer_documents_stored_total")
		return nb > 0 && nc > 0, fmt.Sprintf("b stored %v, c stored %v", nb, nc)
	})
	for _, in := range []*instance{b, c} {
		if err := in.stop(); err != nil {
			t.Errorf("%s: Run returned %v", in.name, err)
		}
	}
	if _, err := s.Kafka.WaitGroupStable(ctx, s.group, 1); err != nil {
		t.Fatalf("group of 1: %v", err)
	}
	wait()
	s.waitAllStored(ev)
	if err := a.stop(); err != nil {
		t.Errorf("a: Run returned %v", err)
	}
	var consumed, dups int64
	for _, in := range []*instance{a, b, c} {
		sum := in.summary(t)
		consumed += sum.Consumed
		dups += sum.Duplicates
	}
	if sent := int64(len(ev.expected())); dups != 0 || consumed != sent {
		t.Errorf("records consumed %d (duplicates %d), want each of the %d once", consumed, dups, sent)
	}
}

// summary is the last log line of a stopped instance.
type summary struct {
	Consumed, Stored, Duplicates int64
	DeadLettered                 int64 `json:"dead_lettered"`
}

func (in *instance) summary(t testing.TB) summary {
	t.Helper()
	for line := range strings.Lines(in.logs.String()) {
		var l struct {
			Msg string
			summary
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "left the consumer group" {
			return l.summary
		}
	}
	t.Fatalf("%s: no final summary in its log", in.name)
	return summary{}
}

// v2 events (a newer schema with an extra optional field) are consumed
// alongside v1 events.
func TestSchemaEvolution(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var doc map[string]any
	if err := json.Unmarshal([]byte(schemas.CommentSchemaText), &doc); err != nil {
		t.Fatal(err)
	}
	doc["fields"] = append(doc["fields"].([]any), map[string]any{
		"name": "language", "type": []any{"null", "string"}, "default": nil,
		"doc": "BCP 47 language of the text, when known.",
	})
	v2text, _ := json.Marshal(doc)
	reg2, err := schemas.NewRegistry(s.rcl).WithSchema(string(v2text))
	if err != nil {
		t.Fatal(err)
	}
	v2id, err := reg2.Register(ctx)
	if err != nil {
		t.Fatalf("register v2: %v", err)
	}
	if v2id == ev.enc.SchemaID() {
		t.Fatalf("v2 got the v1 id %d", v2id)
	}
	v2, err := schemas.ParseSchema(string(v2text))
	if err != nil {
		t.Fatal(err)
	}

	wantSchema := map[string]int{}
	var recs []*kgo.Record
	for i := range 400 {
		c := ev.comment()
		if i%2 == 0 {
			recs = append(recs, ev.record(c))
			wantSchema[c.ID] = ev.enc.SchemaID()
			continue
		}
		body, err := avro.Marshal(v2, map[string]any{
			"id": c.ID, "post_id": c.PostID, "name": c.Name, "text": c.Text, "address": c.Address,
			"created_at": c.CreatedAt, "language": map[string]any{"string": "en"},
		})
		if err != nil {
			t.Fatalf("encode v2: %v", err)
		}
		ev.mu.Lock()
		ev.sent[c.ID] = c
		ev.mu.Unlock()
		recs = append(recs, &kgo.Record{Key: []byte(c.PostID), Value: schemas.Frame(v2id, body)})
		wantSchema[c.ID] = v2id
	}
	s.produce(recs...)
	in := s.start("a", s.env())
	for _, d := range s.waitAllStored(ev) {
		if d.SchemaID != wantSchema[d.ID] {
			t.Errorf("document %s: schema_id %d, want %d", d.ID, d.SchemaID, wantSchema[d.ID])
		}
	}
	if n := in.metric(t, "commentflow_consumer_dead_lettered_total"); n != 0 {
		t.Errorf("%v records dead-lettered", n)
	}
}

// A registry outage is not poison: records wait (nothing stored, nothing
// dead-lettered, nothing committed, not ready) and flow once it is back.
func TestRegistryOutageIsRetriedNotDeadLettered(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ev := s.events()
	down := s.registryDown()
	ev.produce(300)
	in := s.start("a", s.env())
	eventually(t, "/readyz to report the registry not ready", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusServiceUnavailable && checks["registry"] != "ok", fmt.Sprint(code, checks)
	})
	eventually(t, "registry retries", func() (bool, string) {
		n := in.metric(t, "commentflow_consumer_retries_total", `dependency="registry"`)
		return n >= 2, fmt.Sprint(n)
	})
	eventually(t, "the lag of the 3 partitions to add up to the 300 waiting records", func() (bool, string) {
		lag, n := in.metrics(t, "commentflow_consumer_lag")
		return lag == 300 && n == 3, fmt.Sprintf("lag %v over %d partitions", lag, n)
	})
	if n := s.count(); n != 0 {
		t.Errorf("%d documents stored while the registry is down", n)
	}
	if got := s.committed(); len(got) != 0 {
		t.Errorf("offsets committed while the registry is down: %v", got)
	}
	down.Store(false)
	s.waitAllStored(ev)
	eventually(t, "/readyz to report ready", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusOK, fmt.Sprint(code, checks)
	})
	s.readDLQ(0)
}

// On SIGTERM the batch in hand is stored and committed before the member
// leaves: here the batch is still open (its timeout is far away) when the
// stop comes.
func TestShutdownFinishesTheOpenBatch(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	ev.produce(300)
	in := s.start("a", s.env("CONSUMER_BATCH_SIZE", "1000", "CONSUMER_BATCH_TIMEOUT", "1h"))
	eventually(t, "all records polled", func() (bool, string) {
		n := in.metric(t, "commentflow_consumer_records_consumed_total")
		return n == 300, fmt.Sprint(n)
	})
	if n := s.count(); n != 0 {
		t.Fatalf("%d documents stored before the batch was full or timed out", n)
	}
	if err := in.stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	s.checkExactlyOnce(ev.expected())
	s.waitCommittedAtEnd()
	if sum := in.summary(t); sum.Stored != 300 {
		t.Errorf("summary %+v", sum)
	}
}

// With the database down, a stop gives up after SHUTDOWN_TIMEOUT without
// committing what it could not store.
func TestShutdownIsBoundedWhenTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ev := s.events()
	in := s.start("a", s.env("SHUTDOWN_TIMEOUT", "2s"))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	ev.produce(100)
	eventually(t, "mongodb retries", func() (bool, string) {
		n := in.metric(t, "commentflow_consumer_retries_total", `dependency="mongodb"`)
		return n >= 1, fmt.Sprint(n)
	})
	start := time.Now()
	if err := in.stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("stop took %s with SHUTDOWN_TIMEOUT=2s", took)
	}
	if got := s.committed(); len(got) != 0 {
		t.Errorf("offsets committed for unstored records: %v", got)
	}
	// It left the group even though the batch used up the budget (else
	// its partitions would wait for its 45s session to expire).
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if g, err := s.Kafka.WaitGroupInfo(lctx, s.group, func(g *kfake.GroupInfo) bool { return g == nil || len(g.Members) == 0 }); err != nil {
		t.Errorf("the stopped member is still in the group: %+v", g)
	}
	if err := s.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	// A new member picks the records up.
	s.start("b", s.env())
	s.waitAllStored(ev)
}

// When dead letters cannot be written, the batch waits (nothing stored,
// nothing committed, kafka not ready) and completes once they can.
func TestDeadLetterTopicUnavailable(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	fault := s.Kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: schemas.DLQTopic, Count: -1, Err: kerr.TopicAuthorizationFailed})
	s.produce(&kgo.Record{Value: []byte("poison"), Partition: 0})
	ev.produce(100)
	in := s.start("a", s.env("CONSUMER_BATCH_SIZE", "500", "CONSUMER_BATCH_TIMEOUT", "200ms"))
	eventually(t, "/readyz to report kafka not ready", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusServiceUnavailable && checks["kafka"] != "ok", fmt.Sprint(code, checks)
	})
	eventually(t, "dead-letter retries", func() (bool, string) {
		n := in.metric(t, "commentflow_consumer_retries_total", `dependency="kafka"`)
		return n >= 2, fmt.Sprint(n)
	})
	if n := s.count(); n != 0 {
		t.Errorf("%d documents stored before the batch's dead letter was written", n)
	}
	if got := s.committed(); len(got) != 0 {
		t.Errorf("offsets committed before the dead letter was written: %v", got)
	}
	fault.Remove()
	s.waitAllStored(ev)
	s.readDLQ(1)
	eventually(t, "/readyz to report ready", func() (bool, string) {
		code, checks := in.readyz(t)
		return code == http.StatusOK, fmt.Sprint(code, checks)
	})
}
