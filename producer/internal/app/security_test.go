package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/commentflow/commentflow/devstack/infra"
	"github.com/commentflow/commentflow/producer/internal/topictest"
	"github.com/commentflow/commentflow/schemas"
)

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	pool                      *x509.CertPool
	server, client            tls.Certificate
	caFile, certFile, keyFile string // PEM files of the CA and the client
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "commentflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, keyDER
	}
	p.server, _, _ = issue(2, "broker", x509.ExtKeyUsageServerAuth)
	var der, keyDER []byte
	p.client, der, keyDER = issue(3, "producer", x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", der)
	p.keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Against a cluster that requires mutual TLS and SASL, the producer
// connects with KAFKA_TLS_* and each SASL mechanism; refused credentials
// and an untrusted broker certificate exit 2 at once, naming the variable.
func TestTLSAndSASL(t *testing.T) {
	p := newPKI(t)
	users := map[string][2]string{
		"PLAIN":         {"plain-user", "plain-pw"},
		"SCRAM-SHA-256": {"scram256-user", "scram256-pw"},
		"SCRAM-SHA-512": {"scram512-user", "scram512-pw"},
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(schemas.Partitions, schemas.Topic),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{p.server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    p.pool,
			MinVersion:   tls.VersionTLS12,
		}),
		kfake.EnableSASL(),
	}
	for mech, up := range users {
		kopts = append(kopts, kfake.Superuser(mech, up[0], up[1]))
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	st := infra.StartT(t, infra.Options{}) // for its schema registry

	secure := func(mech string, kv ...string) map[string]string {
		return with(baseEnv(st), append([]string{
			"KAFKA_BROKERS", broker,
			"KAFKA_TLS_CA_FILE", p.caFile, "KAFKA_TLS_CERT_FILE", p.certFile, "KAFKA_TLS_KEY_FILE", p.keyFile,
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
		in := runMain(t, secure("PLAIN", "KAFKA_TLS_CA_FILE", p.certFile)) // the client's certificate is no CA
		if in.code != ExitUsage {
			t.Fatalf("exit %d, want %d; stderr: %s", in.code, ExitUsage, in.stderr.String())
		}
		checkOneLineError(t, in.stderr.String(), "KAFKA_TLS_CA_FILE", "not trusted")
	})

	recs := topictest.ReadAllWith(t, st.RegistryURL(), schemas.Topic,
		kgo.SeedBrokers(broker),
		kgo.DialTLSConfig(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: users["SCRAM-SHA-512"][0], Pass: users["SCRAM-SHA-512"][1]}.AsSha512Mechanism()),
	)
	if len(recs) != 30 {
		t.Fatalf("%d records over TLS and SASL, want 30 (10 per mechanism)", len(recs))
	}
}
