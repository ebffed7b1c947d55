package e2e

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas"
	"github.com/commentflow/commentflow/schemas/stored"
)

// position is a record's place in the topic, as its spans name it.
type position struct{ partition, offset string }

func positionOf(s span) position {
	return position{s.attrs["messaging.kafka.source.partition"], s.attrs["messaging.kafka.message.offset"]}
}

// TestRedeliveredRecordContinuesItsTrace: a consumer is killed while it
// holds records it has received but could not make durable (the database
// is down, so nothing is committed); its replacement, another process,
// gets them again. For such a record the producer's trace holds the
// killed process's receive span and the new process's receive and
// process spans (the record's traceparent header did not change), and the
// stored document's trace_id is that trace. Processes are told apart by
// the process.pid of the exporting resource.
func TestRedeliveredRecordContinuesItsTrace(t *testing.T) {
	const n = 30
	rcv := newReceiver(t)
	sys := start(t, system.Config{Consumers: 1, NoProducer: true, Env: tracingEnv(rcv)})
	coll := mongoColl(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Once the consumer is ready it has its store and joins the group
	// whatever the database does; only then does the database go down.
	victim := sys.Consumers()[0]
	pid := victim.Pid()
	victimPid := strconv.Itoa(pid)
	var readiness any
	if err := fetchJSON(ctx, sys.OpsURL(victim)+"/readyz", &readiness); err != nil {
		t.Fatalf("consumer not ready: %v", err)
	}
	if err := sys.Infra.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.StartProducer(n); err != nil {
		t.Fatal(err)
	}

	// The victim's receive spans end when it polls the records; the
	// batch processor exports them every 200ms (tracingEnv).
	received := func(pid string, same bool) map[position]span {
		out := map[position]span{}
		for _, s := range rcv.spans() {
			if s.service == "consumer" && s.name == schemas.Topic+" receive" && (s.pid == pid) == same {
				out[positionOf(s)] = s
			}
		}
		return out
	}
	for deadline := time.Now().Add(2 * time.Minute); len(received(victimPid, true)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no receive span exported by the consumer (pid %s) in 2 minutes; %d spans in all", victimPid, len(rcv.spans()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := victim.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// What the victim had received and the group had not committed when
	// it died (the database is still down: nothing is committed since).
	commits := map[string]int64{}
	if g := sys.Infra.Kafka.GroupInfo(schemas.ConsumerGroup); g != nil {
		for p, c := range g.Commits[schemas.Topic] {
			commits[strconv.Itoa(int(p))] = c.Offset
		}
	}
	uncommitted := map[position]span{}
	for pos, s := range received(victimPid, true) {
		if off, err := strconv.ParseInt(pos.offset, 10, 64); err == nil && off >= commits[pos.partition] {
			uncommitted[pos] = s
		}
	}
	if len(uncommitted) == 0 {
		t.Fatalf("the killed consumer held no uncommitted record: it had received %d, commits %v",
			len(received(victimPid, true)), commits)
	}
	ended := 0 // process spans end when a round gives up (MaxHold) and drops them
	for _, s := range rcv.spans() {
		if s.pid == victimPid && s.name == schemas.Topic+" process" {
			ended++
		}
	}
	t.Logf("killed consumer pid %s: %d records received and uncommitted, %d process spans ended (dropped) before the kill",
		victimPid, len(uncommitted), ended)

	waitRestarted(t, victim, pid)
	if err := sys.Infra.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	storedExactlyOnce(t, sys, coll, n, 3*time.Minute)

	// The stored documents, by position.
	traceAt := map[position]string{}
	idAt := map[position]string{}
	for _, d := range storedDocs(ctx, t, coll) {
		pos := position{strconv.Itoa(int(d.Kafka.Partition)), strconv.FormatInt(d.Kafka.Offset, 10)}
		traceAt[pos], idAt[pos] = d.TraceID, d.ID
	}

	// At least one held record was received again by another process,
	// processed there in the same trace, and stored with that trace.
	var problem string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		problem = redelivered(uncommitted, rcv.spans(), victimPid, traceAt, idAt)
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes (%d records held uncommitted at the kill): %s", len(uncommitted), problem)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// redelivered finds a record of held (the killed process's receive spans
// of uncommitted records, by position) that another process received and
// processed in the same trace, whose document has that trace_id, and whose
// trace the producer started for that comment; it returns "" then, or what
// is missing.
func redelivered(held map[position]span, spans []span, victimPid string, traceAt, idAt map[position]string) string {
	created := map[string]string{} // trace ID -> comment ID of its producer create span
	again := map[position][]span{} // another consumer process's spans of a held record
	for _, s := range spans {
		if s.service == "producer" && s.name == "create "+schemas.Topic {
			created[s.traceID] = s.attrs["commentflow.comment.id"]
		}
		if s.service == "consumer" && s.pid != victimPid {
			if _, ok := held[positionOf(s)]; ok {
				again[positionOf(s)] = append(again[positionOf(s)], s)
			}
		}
	}
	problem := "no record the killed consumer held was received again by another process"
	for pos, first := range held {
		if len(again[pos]) == 0 {
			continue
		}
		var receivedAgain, processedAgain bool
		for _, s := range again[pos] {
			if s.traceID != first.traceID {
				return fmt.Sprintf("record %v: trace %s in process %s, %s after the redelivery (pid %s)", pos, first.traceID, victimPid, s.traceID, s.pid)
			}
			receivedAgain = receivedAgain || s.name == schemas.Topic+" receive"
			processedAgain = processedAgain || s.name == schemas.Topic+" process"
		}
		switch {
		case !receivedAgain || !processedAgain:
			problem = fmt.Sprintf("record %v: received again %v, processed again %v", pos, receivedAgain, processedAgain)
		case traceAt[pos] != first.traceID:
			return fmt.Sprintf("record %v: stored trace_id %q, its trace is %s", pos, traceAt[pos], first.traceID)
		case created[first.traceID] != idAt[pos]:
			problem = fmt.Sprintf("record %v: no producer create span for comment %s in trace %s", pos, idAt[pos], first.traceID)
		default:
			return ""
		}
	}
	return problem
}

// storedDocs reads every stored document.
func storedDocs(ctx context.Context, t *testing.T, coll *mongo.Collection) []stored.Document {
	t.Helper()
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []stored.Document
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}
