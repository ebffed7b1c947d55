package infra

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

	"github.com/twmb/franz-go/pkg/kfake"
)

// PKI is a throwaway CA with a server certificate (for 127.0.0.1) and a
// client certificate, for tests of TLS and mutual TLS.
type PKI struct {
	Pool           *x509.CertPool
	Server, Client tls.Certificate
	// PEM files of the CA, the client certificate and its key.
	CAFile, CertFile, KeyFile string
}

// NewPKI makes a PKI whose files live in t's temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	// issue signs tmpl with parent's key (itself when parent is nil).
	issue := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (tls.Certificate, []byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, key
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
	}
	_, caDER, caKey := issue(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "commentflow test CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.Server, _, _ = issue(leaf(2, "broker", x509.ExtKeyUsageServerAuth), ca, caKey)
	var der []byte
	var key *ecdsa.PrivateKey
	p.Client, der, key = issue(leaf(3, "client", x509.ExtKeyUsageClientAuth), ca, caKey)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.CertFile = writePEM(t, dir, "client.pem", "CERTIFICATE", der)
	p.KeyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SASLUsers are the users of SecureCluster, one per mechanism:
// mechanism → {user, password}.
var SASLUsers = map[string][2]string{
	"PLAIN":         {"plain-user", "plain-pw"},
	"SCRAM-SHA-256": {"scram256-user", "scram256-pw"},
	"SCRAM-SHA-512": {"scram512-user", "scram512-pw"},
}

// SecureCluster is a one-broker kfake cluster that requires mutual TLS
// with p's certificates and SASL (SASLUsers), with topics seeded
// (partitions each). It closes when t ends.
func SecureCluster(t testing.TB, p *PKI, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topics...),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{p.Server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    p.Pool,
			MinVersion:   tls.VersionTLS12,
		}),
		kfake.EnableSASL(),
	}
	for mech, up := range SASLUsers {
		opts = append(opts, kfake.Superuser(mech, up[0], up[1]))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}
