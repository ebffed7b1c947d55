package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commentflow/commentflow/consumer/internal/dlq"
	"github.com/commentflow/commentflow/schemas"
)

// outageMargin is what a rebalance during an outage may take beyond the
// member's MaxHold (5s by default): the heartbeat that tells the member a
// rebalance waits, one backoff step, the join and sync, on a busy machine
// under -race. It stays well below the group's 60s rebalance timeout, which
// is how long the rebalance took when a member retried inside its hold.
const outageMargin = 20 * time.Second

const defaultMaxHold = 5 * time.Second

// MongoDB stopped while members a and b stream, then a third member joins
// (a plain group client: a consumer cannot start while MongoDB is down): a
// and b give up their rounds instead of retrying inside them, so the
// rebalance completes in about MaxHold, not the group's rebalance timeout.
// No two members work on one partition at once, and in the end every event
// is stored exactly once.
func TestMongoOutageDoesNotFreezeTheGroup(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	a := s.start("a", s.env())
	b := s.start("b", s.env())
	wait := ev.stream(1500, 200)
	s.waitSpread(2)
	s.waitCount(150)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.StopMongo(ctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		eventually(t, "/readyz of "+in.name+" to report mongodb not ready", func() (bool, string) {
			code, checks := in.readyz(t)
			return code == http.StatusServiceUnavailable && checks["mongodb"] != "ok", fmt.Sprint(code, checks)
		})
	}
	joined := time.Now()
	x := s.joiner()
	s.waitSpread(3)
	if took := time.Since(joined); took > defaultMaxHold+outageMargin {
		t.Errorf("rebalance during the outage took %s, want at most MaxHold %s + %s", took.Round(time.Millisecond), defaultMaxHold, outageMargin)
	}
	x.Close() // leaves the group, committing nothing
	if err := s.StartMongo(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	s.waitAllStored(ev)
	for _, in := range []*instance{a, b} {
		if err := in.stop(); err != nil {
			t.Errorf("%s: Run returned %v", in.name, err)
		}
	}
	checkNoOverlap(t, a, b)
}

// joiner is a group member that takes partitions and never polls nor
// commits; closing it leaves the group.
func (s *stack) joiner() *kgo.Client {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(schemas.Topic), kgo.DisableAutoCommit())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

// The same with the registry unavailable: a holds records it cannot decode
// when b joins.
func TestRegistryOutageDoesNotFreezeTheGroup(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	down := s.registryDown()
	ev.produce(600)
	a := s.start("a", s.env())
	eventually(t, "a to retry the registry", func() (bool, string) {
		n := a.metric(t, "commentflow_consumer_retries_total", `dependency="registry"`)
		return n >= 2, fmt.Sprint(n)
	})
	joined := time.Now()
	b := s.start("b", s.env())
	s.waitSpread(2)
	if took := time.Since(joined); took > defaultMaxHold+outageMargin {
		t.Errorf("rebalance during the outage took %s, want at most MaxHold %s + %s", took.Round(time.Millisecond), defaultMaxHold, outageMargin)
	}
	if n := s.count(); n != 0 {
		t.Errorf("%d documents stored while the registry is down", n)
	}
	down.Store(false)
	ev.produce(300)
	s.waitAllStored(ev)
	for _, in := range []*instance{a, b} {
		if err := in.stop(); err != nil {
			t.Errorf("%s: Run returned %v", in.name, err)
		}
	}
	s.readDLQ(0)
	checkNoOverlap(t, a, b)
}

// span is the work of one member on one partition for one batch: from the
// poll of the batch's first record until the batch was committed or
// dropped, as the "batch done" debug line reports it.
type span struct {
	member      string
	partition   int32
	first, last int64
	from, to    time.Time
	stored      bool
}

func (in *instance) spans(t testing.TB) []span {
	t.Helper()
	var out []span
	sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string
			Polled  time.Time
			Done    time.Time
			Stored  bool
			Offsets []struct {
				Partition   int32
				First, Last int64
			}
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "batch done" {
			continue
		}
		for _, o := range line.Offsets {
			out = append(out, span{member: in.name, partition: o.Partition, first: o.First, last: o.Last,
				from: line.Polled, to: line.Done, stored: line.Stored})
		}
	}
	return out
}

// checkNoOverlap checks, per partition, that no two members ever worked on
// it at the same time, and that the stored spans cover each offset once.
func checkNoOverlap(t *testing.T, members ...*instance) {
	t.Helper()
	byPartition := map[int32][]span{}
	n := 0
	for _, in := range members {
		for _, sp := range in.spans(t) {
			byPartition[sp.partition] = append(byPartition[sp.partition], sp)
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no \"batch done\" lines in the members' logs")
	}
	for p, spans := range byPartition {
		sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
		// Spans of one member may overlap each other (pipelining); a span
		// of another member must start after every earlier one ended.
		var lastEnd time.Time
		var lastMember string
		for _, sp := range spans {
			if sp.member != lastMember && lastMember != "" && sp.from.Before(lastEnd) {
				t.Errorf("partition %d: %s worked on offsets %d-%d from %s while %s worked on it until %s",
					p, sp.member, sp.first, sp.last, sp.from.Format(time.StampMicro), lastMember, lastEnd.Format(time.StampMicro))
			}
			if sp.member != lastMember {
				lastMember = sp.member
				lastEnd = sp.to
			} else if sp.to.After(lastEnd) {
				lastEnd = sp.to
			}
		}
	}
}

// Two poison records of about 1 MB, accepted on the comments topic: the
// first fits the dead-letter topic's limit (which the dead-letter producer
// must learn from the broker, not from franz-go's smaller default) and is
// dead-lettered whole; the second cannot fit once the dead-letter headers
// are added, so the topic refuses it for good and an envelope without the
// value takes its place. The good records after them are stored, and the
// group rebalances normally meanwhile.
func TestDeadLetterRefusalDoesNotStopThePartition(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	const whole, refused = 1_020_000, 1_048_400 // the topics' limit is kfake's 1,048,588
	big, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.DefaultProduceTopic(schemas.Topic),
		kgo.ProducerBatchMaxBytes(2<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	poison := func(n int) *kgo.Record {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(rand.Uint32())
		}
		v[0] = 0xff // not the Confluent magic byte: bad framing
		return &kgo.Record{Key: []byte("p"), Value: v}
	}
	pctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, n := range []int{whole, refused} { // one per batch: each is about the limit
		if err := big.ProduceSync(pctx, poison(n)).FirstErr(); err != nil {
			t.Fatalf("produce the poison: %v", err)
		}
	}
	ev.produce(300)
	a := s.start("a", s.env())
	b := s.start("b", s.env())
	want := ev.expected()
	s.waitCount(int64(len(want)))
	s.waitCommittedAtEnd()
	s.waitSpread(2)
	s.checkExactlyOnce(want)

	recs := s.readDLQ(2)
	sort.Slice(recs, func(i, j int) bool { return len(recs[i].Value) > len(recs[j].Value) })
	if got := len(recs[0].Value); got != whole {
		t.Errorf("first dead letter holds %d bytes, want the whole %d", got, whole)
	}
	env := recs[1]
	h := func(k string) string { v, _ := dlq.Header(env, k); return v }
	if len(env.Value) != 0 || string(env.Key) != "p" {
		t.Errorf("envelope: key %q, %d value bytes, want key p and no value", env.Key, len(env.Value))
	}
	if h(dlq.HeaderSize) != strconv.Itoa(refused) || h(dlq.HeaderTopic) != schemas.Topic ||
		h(dlq.HeaderOffset) == "" || h(dlq.HeaderClass) != "bad_framing" || !strings.Contains(h(dlq.HeaderRefused), "MESSAGE_TOO_LARGE") {
		t.Errorf("envelope headers: %v", env.Headers)
	}
	var n float64
	for _, in := range []*instance{a, b} {
		n += in.metric(t, "commentflow_consumer_dead_letters_without_value_total")
	}
	if n != 1 {
		t.Errorf("dead letters without value counted %v, want 1", n)
	}
}

// SIGTERM while the member is joining the group, and the join cannot
// complete (another member holds the rebalance for the whole rebalance
// timeout): Run still returns within SHUTDOWN_TIMEOUT.
func TestShutdownDuringAGroupJoinKeepsItsBudget(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	ev.produce(50)
	// x polls and never allows the rebalance.
	x, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(schemas.Topic), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(60*time.Second), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.CloseAllowingRebalance()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for n := 0; n == 0; {
		fs := x.PollRecords(ctx, 10)
		if ctx.Err() != nil {
			t.Fatal("x polled nothing")
		}
		n = len(fs.Records())
	}
	const budget = 5 * time.Second
	b := s.start("b", s.env("SHUTDOWN_TIMEOUT", budget.String()))
	if _, err := s.Kafka.WaitGroupInfo(ctx, s.group, func(g *kfake.GroupInfo) bool {
		return g != nil && g.State == "PreparingRebalance"
	}); err != nil {
		t.Fatalf("b's join: %v", err)
	}
	start := time.Now()
	if err := b.stop(); err != nil {
		t.Errorf("b: Run returned %v", err)
	}
	// The budget, plus what a busy machine adds to the last steps (the
	// budget is the service's own clock: it never waits past it).
	if took := time.Since(start); took > budget+2*time.Second {
		t.Errorf("b stopped after %s, want within SHUTDOWN_TIMEOUT=%s", took.Round(time.Millisecond), budget)
	}
}

// Static membership: a replica killed and restarted with the same
// CONSUMER_INSTANCE_ID takes its partitions back at once, not after the
// dead member's session timeout (60s here), and nothing is lost or stored
// twice.
func TestRestartWithTheSameInstanceIDTakesItsPartitionsBack(t *testing.T) {
	bin := binary(t)
	s := newStack(t)
	ev := s.events()
	a := s.start("a", s.env("CONSUMER_INSTANCE_ID", "consumer-0"))
	victimEnv := s.env("CONSUMER_INSTANCE_ID", "consumer-1", "KAFKA_SESSION_TIMEOUT", "60s")
	victim := startProcess(t, bin, "victim", victimEnv)
	wait := ev.stream(1200, 200)
	s.waitSpread(2)
	s.waitCount(150)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	before, err := s.Kafka.WaitGroupInfo(ctx, s.group, func(g *kfake.GroupInfo) bool { return g != nil && g.State == "Stable" })
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.wait(t)
	again := startProcess(t, bin, "victim-again", victimEnv).instance()
	// New events after the restart, so that its partitions have records
	// to store however far the stream got meanwhile (on a busy machine it
	// had ended, and the victim had stored all of its partition's share,
	// before the kill: the restarted replica then had nothing to store).
	ev.produce(300)
	eventually(t, "the restarted replica to store events", func() (bool, string) {
		n := again.metric(t, "commentflow_consumer_documents_stored_total")
		return n > 0, fmt.Sprint(n)
	})
	if took := time.Since(killed); took >= 60*time.Second {
		t.Errorf("the restarted replica stored again %s after the kill: it waited for the session timeout", took.Round(time.Second))
	}
	wait()
	s.waitAllStored(ev)
	after, err := s.Kafka.WaitGroupInfo(ctx, s.group, func(g *kfake.GroupInfo) bool { return g != nil && g.State == "Stable" })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("group generation %d before the restart, %d after", before.Epoch, after.Epoch)
	if err := a.stop(); err != nil {
		t.Errorf("a: %v", err)
	}
}

// A static member that is stopped (SIGTERM: a deliberate stop, such as a
// scale-down) leaves the group, so its partitions move to the others at
// once, not after its session timeout (60s here). Only a crash leaves them
// waiting for the session timeout.
func TestStoppedStaticMemberLeavesTheGroup(t *testing.T) {
	s := newStack(t)
	ev := s.events()
	a := s.start("a", s.env("CONSUMER_INSTANCE_ID", "consumer-1", "KAFKA_SESSION_TIMEOUT", "60s"))
	b := s.start("b", s.env("CONSUMER_INSTANCE_ID", "consumer-2", "KAFKA_SESSION_TIMEOUT", "60s"))
	wait := ev.stream(600, 200)
	s.waitSpread(2)
	stopped := time.Now()
	if err := b.stop(); err != nil {
		t.Errorf("b: Run returned %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.Kafka.WaitGroupInfo(ctx, s.group, func(g *kfake.GroupInfo) bool {
		return g != nil && g.State == "Stable" && len(g.Members) == 1
	}); err != nil {
		t.Fatalf("the group never settled on a alone: %v", err)
	}
	// Well below the 60s session timeout, however busy the machine.
	if took := time.Since(stopped); took >= 40*time.Second {
		t.Errorf("a got b's partitions %s after b stopped: b did not leave, the group waited for its session timeout", took.Round(time.Second))
	}
	wait()
	s.waitAllStored(ev)
	if err := a.stop(); err != nil {
		t.Errorf("a: %v", err)
	}
}
