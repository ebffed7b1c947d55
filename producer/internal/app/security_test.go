package app

import (
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/devstack/kafkatest"
	"github.com/commentflow/commentflow/schemas"
)

// Against a cluster that requires mutual TLS and SASL, the producer
// connects with KAFKA_TLS_* and each SASL mechanism; refused credentials
// and an untrusted broker certificate exit 2 at once, naming the variable.
func TestTLSAndSASL(t *testing.T) {
	p := infra.NewPKI(t)
	users := infra.SASLUsers
	cluster := infra.SecureCluster(t, p, schemas.Partitions, schemas.Topic)
	broker := cluster.ListenAddrs()[0]
	st := infra.StartT(t, infra.Options{}) // for its schema registry

	secure := func(mech string, kv ...string) map[string]string {
		return with(baseEnv(st), append([]string{
			"KAFKA_BROKERS", broker,
			"KAFKA_TLS_CA_FILE", p.CAFile, "KAFKA_TLS_CERT_FILE", p.CertFile, "KAFKA_TLS_KEY_FILE", p.KeyFile,
			"KAFKA_SASL_MECHANISM", mech, "KAFKA_SASL_USERNAME", users[mech][0], "KAFKA_SASL_PASSWORD", users[mech][1],
			"PRODUCER_COUNT", "10", "LOG_LEVEL", "info", "STARTUP_TIMEOUT", "2s",
		}, kv...)...)
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			in := runMain(t, secure(mech))
			if in.code != 0 {
				t.Fatalf("exit %d; stderr: %s", in.code, in.stderr.String())
			}
		})
	}
	t.Run("credentials refused", func(t *testing.T) {
		// kfake drops the connection on a wrong password, where Kafka and
		// Redpanda answer SASL_AUTHENTICATION_FAILED; a fault gives that
		// answer.
		refuse := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.SASLAuthenticate}, Err: kerr.SaslAuthenticationFailed, TopLevel: true, Count: -1})
		defer refuse.Remove()
		in := runMain(t, secure("SCRAM-SHA-512"))
		if in.code != ExitUsage {
			t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
		}
		checkOneLineError(t, in.stderr.String(), "KAFKA_SASL_USERNAME", "refused the credentials")
	})
	t.Run("broker certificate not trusted", func(t *testing.T) {
		in := runMain(t, secure("PLAIN", "KAFKA_TLS_CA_FILE", p.CertFile)) // the client's certificate is no CA
		if in.code != ExitUsage {
			t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
		}
		checkOneLineError(t, in.stderr.String(), "KAFKA_TLS_CA_FILE", "not trusted")
	})

	recs := kafkatest.ReadAllWith(t, st.RegistryURL(), schemas.Topic,
		kgo.SeedBrokers(broker),
		kgo.DialTLSConfig(&tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: users["SCRAM-SHA-512"][0], Pass: users["SCRAM-SHA-512"][1]}.AsSha512Mechanism()),
	)
	if len(recs) != 30 {
		t.Fatalf("%d records over TLS and SASL, want 30 (10 per mechanism)", len(recs))
	}
}
