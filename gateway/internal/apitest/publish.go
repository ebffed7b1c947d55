package apitest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/schemas"
	"github.com/commentflow/commentflow/schemas/names"
)

// Publisher writes comments to the topic as the producer does: framed
// with the registered schema, keyed by post id.
type Publisher struct {
	Client *kgo.Client
	enc    *schemas.Encoder
}

// NewPublisher registers the comment schema at registryURL and returns a
// publisher to brokers; it is closed when the test ends.
func NewPublisher(t testing.TB, brokers, registryURL string) *Publisher {
	t.Helper()
	rc, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := schemas.NewRegistry(rc).Register(ctx)
	if err != nil {
		t.Fatalf("register the schema: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(names.Topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Publisher{Client: cl, enc: schemas.NewEncoder(id)}
}

// Comment is the i-th test comment on post by name.
func Comment(post, name string, i int) schemas.Comment {
	return schemas.Comment{
		ID: uuid.Must(uuid.NewV7()).String(), PostID: post, Name: name,
		Text: fmt.Sprintf("comment %d", i), Address: "1 Test Street",
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

// Publish writes the comments in order and returns their records (with
// partition and offset).
func (p *Publisher) Publish(t testing.TB, cs ...schemas.Comment) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, 0, len(cs))
	for i := range cs {
		v, err := p.enc.Encode(&cs[i])
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(cs[i].PostID), Value: v})
	}
	p.Raw(t, recs...)
	return recs
}

// Raw writes records as they are (poison, for instance).
func (p *Publisher) Raw(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}
