package httpsfront

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/provgate/provgate/internal/pki"
)

// Self-signed certificate files in the state folder.
const (
	SelfSignedCert = "https-selfsigned.crt"
	SelfSignedKey  = "https-selfsigned.key"
)

// SelfSigned returns the paths of a self-signed certificate kept in dir,
// creating it on first use: RSA 2048 (which every phone can use), for
// hosts (names and addresses), valid ten years. created says it was made now.
func SelfSigned(dir string, hosts []string) (certPath, keyPath string, created bool, err error) {
	certPath, keyPath = filepath.Join(dir, SelfSignedCert), filepath.Join(dir, SelfSignedKey)
	if _, err := os.Stat(certPath); err == nil {
		return certPath, keyPath, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", false, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", false, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	name, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "provgate " + name, Organization: []string{"provgate self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if name != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", false, err
	}
	if err := pki.WriteKey(keyPath, key); err != nil {
		return "", "", false, fmt.Errorf("httpsfront: write %s: %w", keyPath, err)
	}
	if err := pki.WriteCert(certPath, der); err != nil {
		return "", "", false, fmt.Errorf("httpsfront: write %s: %w", certPath, err)
	}
	return certPath, keyPath, true, nil
}
