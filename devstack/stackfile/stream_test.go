package stackfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/commentflow/commentflow/schemas"
)

// TestGatewayReadsTheTopic: the gateway's comment stream reads the topic,
// so compose gives it the brokers, the registry and the topic, and starts
// it only once the topics exist (like every Kafka client of the stack).
func TestGatewayReadsTheTopic(t *testing.T) {
	gw := service(t, "gateway")
	for _, key := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL"} {
		if v, ok := env(gw, key); !ok || v == "" || strings.Contains(v, "localhost") {
			t.Errorf("gateway: %s = %q, want the broker's address on the compose network", key, v)
		}
	}
	if v, _ := env(gw, "KAFKA_TOPIC"); v != schemas.Topic {
		t.Errorf("gateway: KAFKA_TOPIC = %q, want %q", v, schemas.Topic)
	}
	if d, ok := gw.DependsOn["redpanda-init"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("gateway: does not wait for redpanda-init")
	}
	if _, ok := env(gw, "GATEWAY_MAX_STREAMS"); !ok {
		t.Error("gateway: GATEWAY_MAX_STREAMS is not spelled out")
	}
}

// TestReadmeShowsTheStream: the README shows the stream with curl -N and
// a browser EventSource, and the devstack banner prints the curl -N line.
func TestReadmeShowsTheStream(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"curl -N 'http://localhost:8000/api/v1/comments/stream", "new EventSource('http://localhost:8000/api/v1/comments/stream", "Last-Event-ID"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	main, err := os.ReadFile(filepath.Join(root, "devstack", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(main), "curl -N '%[3]s/api/v1/comments/stream") {
		t.Error("the devstack banner does not show the curl -N line of the stream")
	}
}
