package origin

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/refcloud"
)

// fakeCloud is a scriptable cloud behind real mutual TLS.
type fakeCloud struct {
	srv     *httptest.Server
	dir     string
	handler atomic.Pointer[http.HandlerFunc]
	mu      sync.Mutex
	sites   []string // client certificate CN per request
}

func newFakeCloud(t *testing.T, h http.HandlerFunc) *fakeCloud {
	t.Helper()
	f := &fakeCloud{dir: t.TempDir()}
	if err := pki.Init(f.dir, "site-a", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.handler.Store(&h)
	tlsConf, err := refcloud.ServerTLS(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.sites = append(f.sites, r.TLS.PeerCertificates[0].Subject.CommonName)
		f.mu.Unlock()
		(*f.handler.Load())(w, r)
	}))
	f.srv.TLS = tlsConf
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloud) client(t *testing.T, retries int) *Client {
	t.Helper()
	c, err := New(Config{
		URL: f.srv.URL, CAFile: filepath.Join(f.dir, pki.CACert),
		CertFile: filepath.Join(f.dir, pki.SiteCert("site-a")), KeyFile: filepath.Join(f.dir, pki.SiteKey("site-a")),
		Timeout: 500 * time.Millisecond, Retries: retries,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func serveBody(body string, digestOf string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256([]byte(digestOf))
		w.Header().Set(originapi.HeaderReprDigest, originapi.FormatReprDigest(sum[:]))
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, body)
	}
}

func TestVerifiesReprDigest(t *testing.T) {
	f := newFakeCloud(t, serveBody("the real config", "the real config"))
	c := f.client(t, 0)
	resp, err := c.File(context.Background(), FileRequest{Name: "a.cfg"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "the real config" || resp.MaxAge != time.Minute || resp.Size != 15 {
		t.Fatalf("honest cloud: %q %v %+v", b, err, resp)
	}

	lying := serveBody("a forged config", "the real config")
	f.handler.Store(&lying)
	resp, err = c.File(context.Background(), FileRequest{Name: "a.cfg"}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("lying cloud: %v", err)
	}
}

func TestRetriesFailuresThatMayPass(t *testing.T) {
	var calls atomic.Int32
	ok := serveBody("ok", "ok")
	f := newFakeCloud(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	resp, err := f.client(t, 2).File(context.Background(), FileRequest{Name: "a.cfg"}, "")
	if err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	resp.Body.Close()
	calls.Store(0)
	if _, err := f.client(t, 1).File(context.Background(), FileRequest{Name: "a.cfg"}, ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("retries exhausted: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts with retries=1", calls.Load())
	}
}

func TestRefusalsAreNotRetried(t *testing.T) {
	var calls atomic.Int32
	f := newFakeCloud(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"reason":"unknown_mac","message":"no"}`)
	})
	resp, err := f.client(t, 3).File(context.Background(), FileRequest{Name: "a.cfg", MAC: "001565123456"}, "")
	if err != nil || resp.Status != 403 || resp.Reason != "unknown_mac" || calls.Load() != 1 {
		t.Fatalf("%+v %v after %d calls", resp, err, calls.Load())
	}
}

func TestSlowCloudTimesOut(t *testing.T) {
	release := make(chan struct{})
	f := newFakeCloud(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	_, err := f.client(t, 0).File(context.Background(), FileRequest{Name: "a.cfg"}, "")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("hung cloud: %v", err)
	}
}

func TestClientCertificateReloadedWhenReplaced(t *testing.T) {
	f := newFakeCloud(t, serveBody("ok", "ok"))
	c := f.client(t, 0)
	get := func() {
		resp, err := c.File(context.Background(), FileRequest{Name: "a.cfg"}, "")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	// Issue a certificate for another site and put it in place of the old one.
	if err := pki.Init(f.dir, "site-b", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".crt", ".key"} {
		b, _ := os.ReadFile(filepath.Join(f.dir, "site-site-b"+ext))
		os.WriteFile(filepath.Join(f.dir, "site-site-a"+ext), b, 0o600)
	}
	c.Close() // new connections, so new handshakes
	get()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sites) != 2 || f.sites[0] != "site-a" || f.sites[1] != "site-b" {
		t.Fatalf("handshakes presented %v", f.sites)
	}
}

func TestTrustsOnlyTheCloudCA(t *testing.T) {
	f := newFakeCloud(t, serveBody("ok", "ok"))
	other := t.TempDir()
	pki.Init(other, "site-a", nil, time.Now())
	c, err := New(Config{
		URL: f.srv.URL, CAFile: filepath.Join(other, pki.CACert), // another CA
		CertFile: filepath.Join(f.dir, pki.SiteCert("site-a")), KeyFile: filepath.Join(f.dir, pki.SiteKey("site-a")),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.File(context.Background(), FileRequest{Name: "a.cfg"}, "")
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("cloud with a certificate from another CA: %v", err)
	}
}
