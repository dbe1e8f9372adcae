// Package refcloudtest runs a real reference cloud (provgate-origin's
// server) over mutual TLS on loopback for tests, with a fresh PKI and a copy
// of the sample data folder.
package refcloudtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/refcloud"
)

// Site is the sample data's main site; OtherSite is a second site.
const (
	Site      = "demo-site"
	OtherSite = "other-site"
)

// Options tune a test cloud.
type Options struct {
	DataDir string        // default: a fresh copy of testdata/origin-sample
	Latency time.Duration // added to every response
	MaxAge  time.Duration
	Logger  *slog.Logger // default: discard
	Watch   bool         // reload the data folder when it changes
}

// Cloud is a running reference cloud.
type Cloud struct {
	Server  *refcloud.Server
	Addr    string // host:port
	URL     string // https://host:port
	PKIDir  string
	DataDir string

	tlsConf *tls.Config
	opts    Options
	cancel  context.CancelFunc
	done    chan error
}

// Start makes a PKI with client certificates for Site and OtherSite and
// starts a cloud on 127.0.0.1:0. It stops when the test ends.
func Start(t testing.TB, opts Options) *Cloud {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = CopySample(t)
	}
	c := &Cloud{PKIDir: t.TempDir(), DataDir: opts.DataDir, opts: opts}
	for _, site := range []string{Site, OtherSite} {
		if err := pki.Init(c.PKIDir, site, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := refcloud.New(refcloud.Config{DataDir: opts.DataDir, Latency: opts.Latency, MaxAge: opts.MaxAge, Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	c.Server = srv
	if c.tlsConf, err = refcloud.ServerTLS(c.PKIDir); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Addr = ln.Addr().String()
	c.URL = "https://" + c.Addr
	c.serve(ln)
	t.Cleanup(c.Stop)
	if opts.Watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Watch(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return c
}

func (c *Cloud) serve(ln net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() { c.done <- c.Server.Serve(ctx, ln, c.tlsConf) }()
}

// Stop stops the cloud, as if it went down; calling it twice is fine.
func (c *Cloud) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
	c.cancel = nil
}

// Restart brings a stopped cloud back on the same address.
func (c *Cloud) Restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.serve(ln)
}

// CertFiles returns the paths of a site's client certificate and key.
func (c *Cloud) CertFiles(site string) (cert, key string) {
	return filepath.Join(c.PKIDir, pki.SiteCert(site)), filepath.Join(c.PKIDir, pki.SiteKey(site))
}

// CAFile returns the path of the cloud CA certificate.
func (c *Cloud) CAFile() string { return filepath.Join(c.PKIDir, pki.CACert) }

// Client returns an HTTP client presenting site's certificate.
func (c *Cloud) Client(t testing.TB, site string) *http.Client {
	t.Helper()
	cert, key := c.CertFiles(site)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return c.ClientWith(t, []tls.Certificate{pair})
}

// ClientWith returns an HTTP client that trusts the cloud CA and presents certs.
func (c *Cloud) ClientWith(t testing.TB, certs []tls.Certificate) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(c.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS13}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// SampleDir is the repository's testdata/origin-sample.
func SampleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "origin-sample")
}

// CopySample copies the sample data folder into a temporary folder.
func CopySample(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(SampleDir())); err != nil {
		t.Fatal(err)
	}
	return dst
}

// SampleWith copies the sample data folder and adds files to files/common,
// served to every tenant.
func SampleWith(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := CopySample(t)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, "files", "common", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
