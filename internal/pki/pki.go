// Package pki is the development PKI of the reference cloud: a cloud CA
// (ECDSA P-256), the cloud's server certificate, and client certificates
// that bind a gateway to its site. The site is the client certificate's
// Subject Common Name; the CA sets it, whatever a CSR asks for.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// File names inside a PKI folder.
const (
	CACert     = "ca.crt"
	CAKey      = "ca.key"
	ServerCert = "server.crt"
	ServerKey  = "server.key"
)

// Validity periods of what this package issues.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 825 * 24 * time.Hour
)

// SiteCert and SiteKey name a site's client certificate and key.
func SiteCert(site string) string { return "site-" + site + ".crt" }
func SiteKey(site string) string  { return "site-" + site + ".key" }

var siteRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidSite reports whether site is a usable site ID: lowercase letters,
// digits, '.', '_' and '-', 1 to 63 characters.
func ValidSite(site string) error {
	if !siteRe.MatchString(site) {
		return fmt.Errorf("pki: invalid site %q: use 1-63 of a-z 0-9 . _ - starting with a letter or digit", site)
	}
	return nil
}

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewKey makes an ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewCA creates a self-signed CA valid from notBefore to notAfter.
func NewCA(name string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"provgate"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IssueServer issues a TLS server certificate for hosts (DNS names or IPs).
func (ca *CA) IssueServer(pub crypto.PublicKey, hosts []string, notBefore, notAfter time.Time) ([]byte, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "provgate-origin"},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return sign(tmpl, ca.Cert, pub, ca.Key)
}

// IssueClient issues a site's client certificate: Subject CN = site.
func (ca *CA) IssueClient(site string, pub crypto.PublicKey, notBefore, notAfter time.Time) ([]byte, error) {
	if err := ValidSite(site); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: site, Organization: []string{"provgate site"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return sign(tmpl, ca.Cert, pub, ca.Key)
}

// SignCSR verifies a PEM certificate request's self-signature and issues a
// client certificate for site with the request's public key. The CSR's own
// subject is ignored: the operator who signs decides the site.
func (ca *CA) SignCSR(site string, csrPEM []byte, now time.Time) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("pki: no PEM CERTIFICATE REQUEST found")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: CSR signature: %w", err)
	}
	return ca.IssueClient(site, csr.PublicKey, now.Add(-time.Minute), now.Add(LeafValidity))
}

// CreateCSR makes a PEM certificate request for key, asking for site.
func CreateCSR(key crypto.Signer, site string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: site},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	return der, nil
}

// CertPEM encodes a DER certificate as PEM.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM encodes a private key as PKCS #8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteKey writes a private key, PEM, readable by its owner only (0600).
func WriteKey(path string, key crypto.Signer) error {
	b, err := KeyPEM(key)
	if err != nil {
		return err
	}
	return writeFile(path, b, 0o600)
}

// WriteCert writes a DER certificate as PEM (0644).
func WriteCert(path string, der []byte) error {
	return writeFile(path, CertPEM(der), 0o644)
}

// writeFile replaces path atomically with the given mode, so a reader never
// sees a half-written key and a key is never briefly world-readable.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadCA reads the CA of a PKI folder.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACert))
	if err != nil {
		return nil, fmt.Errorf("pki: %w (run 'provgate-origin pki init' first)", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKey))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("pki: %s or %s is not PEM", CACert, CAKey)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CACert, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAKey, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not a signing key", CAKey)
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// Init prepares a PKI folder: it creates the CA unless one is there, a fresh
// server certificate for localhost, 127.0.0.1, ::1 and hosts, and a client
// certificate and key for site. Running it again for another site adds that
// site's client certificate under the same CA.
func Init(dir, site string, hosts []string, now time.Time) error {
	if err := ValidSite(site); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := LoadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = NewCA("provgate cloud CA", now.Add(-time.Minute), now.Add(CAValidity))
		if err == nil {
			err = WriteKey(filepath.Join(dir, CAKey), ca.Key)
		}
		if err == nil {
			err = WriteCert(filepath.Join(dir, CACert), ca.Cert.Raw)
		}
	}
	if err != nil {
		return err
	}
	serverKey, err := NewKey()
	if err != nil {
		return err
	}
	der, err := ca.IssueServer(serverKey.Public(), append([]string{"localhost", "127.0.0.1", "::1"}, hosts...), now.Add(-time.Minute), now.Add(LeafValidity))
	if err != nil {
		return err
	}
	if err := WriteKey(filepath.Join(dir, ServerKey), serverKey); err != nil {
		return err
	}
	if err := WriteCert(filepath.Join(dir, ServerCert), der); err != nil {
		return err
	}
	clientKey, err := NewKey()
	if err != nil {
		return err
	}
	der, err = ca.IssueClient(site, clientKey.Public(), now.Add(-time.Minute), now.Add(LeafValidity))
	if err != nil {
		return err
	}
	if err := WriteKey(filepath.Join(dir, SiteKey(site)), clientKey); err != nil {
		return err
	}
	return WriteCert(filepath.Join(dir, SiteCert(site)), der)
}
