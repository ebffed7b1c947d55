package kafkaconn_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/kafkaconn"
)

func parse(env map[string]string) (*kafkaconn.Config, error) {
	var c kafkaconn.Config
	s := config.New("t")
	c.Declare(s)
	if err := s.Parse(nil, func(k string) string { return env[k] }); err != nil {
		return nil, err
	}
	return &c, c.Validate()
}

func TestBadConnectionSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"empty brokers", map[string]string{"KAFKA_BROKERS": " , "}, "KAFKA_BROKERS"},
		{"no port", map[string]string{"KAFKA_BROKERS": "localhost"}, "KAFKA_BROKERS"},
		{"bad port", map[string]string{"KAFKA_BROKERS": "localhost:99999"}, "KAFKA_BROKERS"},
		{"url as broker", map[string]string{"KAFKA_BROKERS": "http://x:1"}, "KAFKA_BROKERS"},
		{"registry scheme", map[string]string{"SCHEMA_REGISTRY_URL": "localhost:8081"}, "SCHEMA_REGISTRY_URL"},
		{"registry no host", map[string]string{"SCHEMA_REGISTRY_URL": "http://"}, "SCHEMA_REGISTRY_URL"},
		{"missing ca", map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(dir, "nope.pem")}, "KAFKA_TLS_CA_FILE"},
		{"ca not pem", map[string]string{"KAFKA_TLS_CA_FILE": notPEM}, "KAFKA_TLS_CA_FILE"},
		{"cert without key", map[string]string{"KAFKA_TLS_CERT_FILE": notPEM}, "KAFKA_TLS_KEY_FILE"},
		{"sasl unknown", map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"},
		{"sasl no password", map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_USERNAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	c, err := parse(map[string]string{"KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p", "KAFKA_TLS": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SASLMechanism != "SCRAM-SHA-512" {
		t.Fatalf("mechanism %q", c.SASLMechanism)
	}
	opts, err := c.KafkaOpts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 3 { // brokers, TLS, SASL
		t.Fatalf("%d options, want brokers+TLS+SASL", len(opts))
	}
	plain, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts, _ := plain.KafkaOpts(nil); len(opts) != 1 {
		t.Fatalf("no TLS/SASL configured: %d options, want brokers only", len(opts))
	}
	if _, err := plain.RegistryClient(); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryMisconfigured(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string // the variable named, "" for none
	}{
		{&sr.ResponseError{StatusCode: http.StatusUnauthorized}, "SCHEMA_REGISTRY_USERNAME"},
		{fmt.Errorf("lookup: %w", &sr.ResponseError{StatusCode: http.StatusForbidden}), "SCHEMA_REGISTRY_USERNAME"},
		{&sr.ResponseError{StatusCode: http.StatusNotFound}, "SCHEMA_REGISTRY_URL"},
		{&sr.ResponseError{StatusCode: http.StatusServiceUnavailable}, ""},
		{errors.New("connection refused"), ""},
	} {
		err := kafkaconn.RegistryMisconfigured("http://r:8081", tc.err)
		var ce *config.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: got %v, want nil (waiting can help)", tc.err, err)
		case tc.want != "" && (!errors.As(err, &ce) || ce.Var != tc.want):
			t.Errorf("%v: got %v, want a config error naming %s", tc.err, err, tc.want)
		}
	}
}
