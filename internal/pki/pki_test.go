package pki

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitWritesChainAndPrivateKeys(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, "site-a", []string{"cloud.example", "192.0.2.7"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CAKey, ServerKey, SiteKey("site-a")} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}
	ca := readCert(t, filepath.Join(dir, CACert))
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv := readCert(t, filepath.Join(dir, ServerCert))
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "cloud.example", "192.0.2.7"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("server certificate not valid for %s: %v", host, err)
		}
	}
	cli := readCert(t, filepath.Join(dir, SiteCert("site-a")))
	if cli.Subject.CommonName != "site-a" {
		t.Errorf("client CN = %q", cli.Subject.CommonName)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}

	// A second site reuses the CA.
	if err := Init(dir, "site-b", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if again := readCert(t, filepath.Join(dir, CACert)); !again.Equal(ca) {
		t.Error("second init replaced the CA")
	}
}

func TestSignCSRSetsSiteFromOperator(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, "site-a", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	csr, err := CreateCSR(key, "site-b") // asks for another site
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignCSR("site-a", csr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if cert.Subject.CommonName != "site-a" {
		t.Fatalf("CN = %q, want the operator's site", cert.Subject.CommonName)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Fatal("no clientAuth usage")
	}

	// A CSR whose signature does not match is refused.
	block, _ := pem.Decode(csr)
	block.Bytes[len(block.Bytes)-3] ^= 0xff
	if _, err := ca.SignCSR("site-a", pem.EncodeToMemory(block), time.Now()); err == nil {
		t.Fatal("tampered CSR signed")
	}
	if _, err := ca.SignCSR("site-a", []byte("nonsense"), time.Now()); err == nil {
		t.Fatal("garbage CSR signed")
	}
	if _, err := ca.SignCSR("Site A", csr, time.Now()); err == nil {
		t.Fatal("invalid site accepted")
	}
}
