package app_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/schemas"
)

// Against a cluster that requires mutual TLS and SASL, the consumer
// connects with KAFKA_TLS_* and each SASL mechanism; refused credentials
// and an untrusted broker certificate exit 2 at once (well before
// STARTUP_TIMEOUT), naming the variable, as the producer does.
func TestTLSAndSASL(t *testing.T) {
	p := infra.NewPKI(t)
	cluster := infra.SecureCluster(t, p, schemas.Partitions, schemas.Topic, schemas.DLQTopic)
	s := newStack(t) // for its database and registry
	secure := func(mech string, kv ...string) map[string]string {
		return s.env(append([]string{
			"KAFKA_BROKERS", cluster.ListenAddrs()[0],
			"KAFKA_TLS_CA_FILE", p.CAFile, "KAFKA_TLS_CERT_FILE", p.CertFile, "KAFKA_TLS_KEY_FILE", p.KeyFile,
			"KAFKA_SASL_MECHANISM", mech, "KAFKA_SASL_USERNAME", infra.SASLUsers[mech][0], "KAFKA_SASL_PASSWORD", infra.SASLUsers[mech][1],
			// long enough that exiting 2 at once is told apart from giving up
			"STARTUP_TIMEOUT", "10m",
		}, kv...)...)
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			in := s.start(mech, secure(mech))
			if err := in.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
		})
	}
	exits2 := func(t *testing.T, env map[string]string, variable, words string) {
		t.Helper()
		code, _, stderr := mainUntilExit(t, env)
		if code != 2 || !strings.Contains(stderr, variable) || !strings.Contains(stderr, words) ||
			strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Fatalf("exit %d, stderr %q; want 2 and one line naming %s (%q)", code, stderr, variable, words)
		}
	}
	t.Run("credentials refused", func(t *testing.T) {
		// kfake drops the connection on a wrong password, where Kafka and
		// Redpanda answer SASL_AUTHENTICATION_FAILED; a fault gives that
		// answer.
		refuse := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.SASLAuthenticate}, Err: kerr.SaslAuthenticationFailed, TopLevel: true, Count: -1})
		defer refuse.Remove()
		exits2(t, secure("SCRAM-SHA-512", "KAFKA_SASL_PASSWORD", "wrong"), "KAFKA_SASL_USERNAME", "refused the credentials")
	})
	t.Run("broker certificate not trusted", func(t *testing.T) {
		exits2(t, secure("PLAIN", "KAFKA_TLS_CA_FILE", p.CertFile), "KAFKA_TLS_CA_FILE", "not trusted") // the client's certificate is no CA
	})
}

// MongoDB refusing the credentials in MONGODB_URI is a mistake waiting
// cannot cure: the consumer exits 2 at once naming MONGODB_URI, without
// the password. (The stand-in database answers every SCRAM conversation
// with AuthenticationFailed, code 18, which is what MongoDB answers a
// wrong password.)
func TestMongoDBRefusedCredentialsExit2(t *testing.T) {
	s := newStack(t)
	env := s.env("STARTUP_TIMEOUT", "10m") // long enough that exiting 2 at once is told apart from giving up
	env["MONGODB_URI"] = strings.Replace(env["MONGODB_URI"], "mongodb://", "mongodb://commentflow:s3cret-pw@", 1)
	code, stdout, msg := mainUntilExit(t, env)
	if code != 2 || !strings.Contains(msg, "MONGODB_URI") || !strings.Contains(msg, "refused the credentials") ||
		strings.Contains(msg, "s3cret-pw") || strings.Contains(stdout, "s3cret-pw") {
		t.Fatalf("exit %d, stderr %q; want 2 naming MONGODB_URI (refused the credentials), without the password", code, msg)
	}
}

// mainUntilExit runs the consumer with env until it exits, and fails t when
// it is still running after testTimeout: a failure that must end it at once
// was retried instead.
func mainUntilExit(t *testing.T, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out, errOut strings.Builder
	code = mainWith(ctx, env, &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("still waiting after %s: the failure was retried instead of exiting at once; logs:\n%s", testTimeout, out.String())
	}
	return code, out.String(), errOut.String()
}
