package refcloud_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// get fetches path (with query) and returns status, reason code and body.
func get(t *testing.T, c *http.Client, base, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func reason(t *testing.T, body []byte) string {
	t.Helper()
	var e originapi.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Reason
}

func issue(t *testing.T, ca *pki.CA, site string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.IssueClient(site, key.Public(), notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestRefusesClientsWithoutAValidCertificate(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	now := time.Now()
	ourCA, err := pki.LoadCA(cloud.PKIDir)
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := pki.NewCA("someone else", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]tls.Certificate{
		"no certificate": nil,
		"foreign CA":     {issue(t, foreignCA, refcloudtest.Site, now.Add(-time.Hour), now.Add(time.Hour))},
		"expired":        {issue(t, ourCA, refcloudtest.Site, now.Add(-48*time.Hour), now.Add(-24*time.Hour))},
	}
	for name, certs := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := cloud.ClientWith(t, certs).Get(cloud.URL + originapi.PathInventory)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("handshake accepted, status %d", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), "tls") {
				t.Fatalf("want a TLS refusal, got %v", err)
			}
		})
	}
	t.Run("valid certificate of a site the cloud does not know", func(t *testing.T) {
		c := cloud.ClientWith(t, []tls.Certificate{issue(t, ourCA, "ghost-site", now.Add(-time.Hour), now.Add(time.Hour))})
		resp, body := get(t, c, cloud.URL, originapi.PathInventory, nil)
		if resp.StatusCode != http.StatusForbidden || reason(t, body) != originapi.ReasonUnknownSite {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
}

func TestSiteCannotReadAnotherSite(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	other := cloud.Client(t, refcloudtest.OtherSite)

	resp, body := get(t, other, cloud.URL, originapi.PathInventory, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inventory: %d %s", resp.StatusCode, body)
	}
	var inv originapi.Inventory
	if err := json.Unmarshal(body, &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Site != refcloudtest.OtherSite || len(inv.Devices) != 1 || inv.Devices[0].MAC != "805ec0000001" {
		t.Fatalf("other-site sees %+v", inv)
	}
	// demo-site's Yealink, named by other-site's gateway: not its device.
	resp, body = get(t, other, cloud.URL, originapi.PathFiles+"001565123456.cfg?mac=001565123456&tenant=acme", nil)
	if resp.StatusCode != http.StatusForbidden || reason(t, body) != originapi.ReasonUnknownTenant {
		t.Fatalf("with tenant: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, other, cloud.URL, originapi.PathFiles+"001565123456.cfg?mac=001565123456", nil)
	if resp.StatusCode != http.StatusForbidden || reason(t, body) != originapi.ReasonUnknownMAC {
		t.Fatalf("by MAC: %d %s", resp.StatusCode, body)
	}
}

func TestFileAuthorization(t *testing.T) {
	data := refcloudtest.CopySample(t)
	if err := os.WriteFile(filepath.Join(data, "files", "common", "broken.cfg.tmpl"), []byte("{{.Device.Vars.nope}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cloud := refcloudtest.Start(t, refcloudtest.Options{DataDir: data})
	c := cloud.Client(t, refcloudtest.Site)
	tests := []struct {
		name   string
		path   string
		status int
		reason string
		body   string // substring of a 200 body
	}{
		{"device config rendered", "files/001565123456.cfg?mac=001565123456&brand=yealink&model=T46S&tenant=acme&transport=tftp&client_ip=10.20.0.5", 200, "", "account.1.password = Sip-Secret-1001-acme"},
		{"model compared without case", "files/001565123456.cfg?mac=001565123456&model=t46s", 200, "", "00:15:65:12:34:56"},
		{"upper-case pattern", "files/SEP001B54AABB01.cnf.xml?mac=001b54aabb01&brand=cisco", 200, "", "<authPassword>Sip-Secret-1003-acme</authPassword>"},
		{"digits-only MAC, upper-case placeholder", "files/000413778899.xml?mac=000413778899&brand=snom", 200, "", "Sip-Secret-2001-globex"},
		{"tenant of the device, not the request", "files/001565123456.cfg?mac=001565123456", 200, "", "tenant acme"},
		{"tenant common file", "files/y000000000000.cfg?tenant=acme", 200, "", "auto_provision.pnp_enable"},
		{"tenant file needs the tenant", "files/y000000000000.cfg", 404, originapi.ReasonNotFound, ""},
		{"site common file", "files/000000000000.cfg", 200, "", "APPLICATION"},
		{"unknown MAC", "files/0015650000ff.cfg?mac=0015650000ff", 403, originapi.ReasonUnknownMAC, ""},
		{"MAC of another tenant", "files/000413778899.xml?mac=000413778899&tenant=acme", 403, originapi.ReasonTenantMismatch, ""},
		{"brand mismatch", "files/001565123456.cfg?mac=001565123456&brand=polycom", 403, originapi.ReasonBrandMismatch, ""},
		{"model mismatch", "files/001565123456.cfg?mac=001565123456&model=T54W", 403, originapi.ReasonModelMismatch, ""},
		{"file of another device", "files/0004f2abcdef.cfg?mac=001565123456", 403, originapi.ReasonMACMismatch, ""},
		{"device file without a device", "files/0004F2ABCDEF.cfg?tenant=acme", 403, originapi.ReasonMACMismatch, ""},
		{"unknown tenant", "files/000000000000.cfg?tenant=nobody", 403, originapi.ReasonUnknownTenant, ""},
		{"missing file", "files/nothing-here.cfg?tenant=acme", 404, originapi.ReasonNotFound, ""},
		{"template source", "files/%7Bmac%7D.cfg.tmpl?tenant=acme", 400, originapi.ReasonBadRequest, ""},
		{"braces", "files/%7Bmac%7D.cfg?tenant=acme", 400, originapi.ReasonBadRequest, ""},
		{"control byte", "files/a%01b.cfg", 400, originapi.ReasonBadRequest, ""},
		{"dot file", "files/.hidden", 400, originapi.ReasonBadRequest, ""},
		{"bad MAC parameter", "files/x.cfg?mac=zz", 400, originapi.ReasonBadRequest, ""},
		{"bad transport", "files/x.cfg?transport=ftp", 400, originapi.ReasonBadRequest, ""},
		{"bad client_ip", "files/x.cfg?client_ip=ten", 400, originapi.ReasonBadRequest, ""},
		{"template error", "files/broken.cfg?mac=001565123456", 500, originapi.ReasonRenderFailed, ""},
		{"unknown API path", "v2/files/x", 404, originapi.ReasonNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, c, cloud.URL, "/v1/"+strings.TrimPrefix(tt.path, "v1/"), nil)
			if strings.HasPrefix(tt.path, "v2/") {
				resp, body = get(t, c, cloud.URL, "/"+tt.path, nil)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if tt.reason != "" {
				if got := reason(t, body); got != tt.reason {
					t.Fatalf("reason %q, want %q", got, tt.reason)
				}
			}
			if !bytes.Contains(body, []byte(tt.body)) {
				t.Fatalf("body lacks %q:\n%s", tt.body, body)
			}
		})
	}
}

func TestMethodsAndRanges(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	c := cloud.Client(t, refcloudtest.Site)
	resp, err := c.Post(cloud.URL+originapi.PathFiles+"000000000000.cfg", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || reason(t, body) != originapi.ReasonMethod {
		t.Fatalf("POST: %d Allow=%q %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
	head, err := c.Head(cloud.URL + originapi.PathFiles + "000000000000.cfg")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.ContentLength <= 0 || head.Header.Get("ETag") == "" {
		t.Fatalf("HEAD: %d len=%d etag=%q", head.StatusCode, head.ContentLength, head.Header.Get("ETag"))
	}
	full, whole := get(t, c, cloud.URL, originapi.PathFiles+"000000000000.cfg", nil)
	part, body := get(t, c, cloud.URL, originapi.PathFiles+"000000000000.cfg", http.Header{"Range": {"bytes=5-9"}})
	if part.StatusCode != http.StatusPartialContent || string(body) != string(whole[5:10]) {
		t.Fatalf("Range: %d %q", part.StatusCode, body)
	}
	if part.Header.Get(originapi.HeaderReprDigest) != full.Header.Get(originapi.HeaderReprDigest) {
		t.Fatal("Repr-Digest of a range must be the whole file's")
	}
}

func TestCachingHeadersDigestAndNotModified(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{MaxAge: 90 * time.Second})
	c := cloud.Client(t, refcloudtest.Site)
	for _, path := range []string{
		originapi.PathInventory,
		originapi.PathFiles + "000000000000.cfg",
		originapi.PathFiles + "001565123456.cfg?mac=001565123456",
	} {
		t.Run(path, func(t *testing.T) {
			resp, body := get(t, c, cloud.URL, path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			want := sha256.Sum256(body)
			got, err := originapi.ParseReprDigest(resp.Header.Get(originapi.HeaderReprDigest))
			if err != nil || !bytes.Equal(got, want[:]) {
				t.Fatalf("Repr-Digest %q does not match the body", resp.Header.Get(originapi.HeaderReprDigest))
			}
			if resp.Header.Get("Cache-Control") != "max-age=90" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d", resp.ContentLength, len(body))
			}
			etag := resp.Header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) {
				t.Fatalf("ETag %q", etag)
			}
			resp, body = get(t, c, cloud.URL, path, http.Header{"If-None-Match": {etag}})
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Fatalf("If-None-Match: %d, %d bytes", resp.StatusCode, len(body))
			}
			resp, _ = get(t, c, cloud.URL, path, http.Header{"If-None-Match": {`"something-else"`}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stale ETag: %d", resp.StatusCode)
			}
		})
	}
}

func TestInventoryCarriesNoSecrets(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	resp, body := get(t, cloud.Client(t, refcloudtest.Site), cloud.URL, originapi.PathInventory, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, secret := range []string{"acme-http-secret", "Sip-Secret", "sip.acme.example"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("inventory contains %q", secret)
		}
	}
	var inv originapi.Inventory
	if err := json.Unmarshal(body, &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv.Tenants) != 2 || len(inv.Devices) != 6 {
		t.Fatalf("tenants %d devices %d", len(inv.Tenants), len(inv.Devices))
	}
	acme := inv.Tenants[0]
	wantHA1, _ := originapi.HA1("SHA-256", "acme-prov", "acme-phones", "acme-http-secret")
	if acme.ID != "acme" || len(acme.Credentials) != 1 || acme.Credentials[0].HA1SHA256 != wantHA1 {
		t.Fatalf("acme = %+v", acme)
	}
	if acme.AllowCIDRs[0] != "127.0.0.0/29" || !acme.Options.AuthAllowedOutsideAllowlist {
		t.Fatalf("acme = %+v", acme)
	}
	if d := inv.Devices[2]; d.MAC != "001b54aabb01" || d.Brand != "cisco" || d.Tenant != "acme" {
		t.Fatalf("device normalisation: %+v", d)
	}
	if !inv.Tenants[1].Options.AuthRequiredInAllowlist {
		t.Fatal("globex option lost")
	}
}

func TestLatencyDelaysEachResponse(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{Latency: 300 * time.Millisecond})
	c := cloud.Client(t, refcloudtest.Site)
	start := time.Now()
	get(t, c, cloud.URL, originapi.PathInventory, nil)
	// A lower bound only: the delay is a floor, never a ceiling.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the configured latency", d)
	}
}

// bigFile makes a sparse file of n bytes under files/common.
func bigFile(t testing.TB, data, name string, n int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(data, "files", "common", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), n-4); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// download streams name from the cloud and returns bytes read.
func download(t testing.TB, c *http.Client, cloudURL, name string) int64 {
	resp, err := c.Get(cloudURL + originapi.PathFiles + url.PathEscape(name))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download %s: %d %v", name, resp.StatusCode, err)
	}
	return n
}

// TestLargeFileIsStreamed fails if the server holds a file in memory: a
// 100 MB download must allocate well under its size.
func TestLargeFileIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the 100 MB download")
	}
	data := refcloudtest.CopySample(t)
	const size = 100 << 20
	bigFile(t, data, "firmware.bin", size)
	cloud := refcloudtest.Start(t, refcloudtest.Options{DataDir: data})
	c := cloud.Client(t, refcloudtest.Site)
	download(t, c, cloud.URL, "000000000000.cfg") // warm up connections
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if n := download(t, c, cloud.URL, "firmware.bin"); n != size {
		t.Fatalf("got %d bytes", n)
	}
	runtime.ReadMemStats(&after)
	// Holding the file would allocate at least its size. Streaming allocates
	// a few MB (more under -race, where sync.Pool drops buffers on purpose).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/2 {
		t.Fatalf("allocated %d bytes to stream %d", alloc, size)
	}
}

// BenchmarkStreamLargeFile reports bytes allocated per download; compare
// the sizes: B/op stays flat while the file grows 100×.
func BenchmarkStreamLargeFile(b *testing.B) {
	for _, size := range []int64{1 << 20, 100 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			data := refcloudtest.CopySample(b)
			bigFile(b, data, "firmware.bin", size)
			cloud := refcloudtest.Start(b, refcloudtest.Options{DataDir: data})
			c := cloud.Client(b, refcloudtest.Site)
			download(b, c, cloud.URL, "firmware.bin") // hash once, connect once
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				download(b, c, cloud.URL, "firmware.bin")
			}
		})
	}
}

func byteSize(n int64) string { return strconv.FormatInt(n>>20, 10) + "MB" }
