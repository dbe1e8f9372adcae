package app_test

import (
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/httpsfront"
	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/policy"
)

const (
	yealinkUA = "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56"
	acmeUser  = "acme-prov"
	acmePass  = "acme-http-secret"
	outside   = "127.0.0.100" // a LAN source in no tenant's allow-list
)

func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (.ci/run installs it)")
	}
}

// curlHTTPS runs curl against the gateway and returns the status code and body.
func curlHTTPS(t *testing.T, e *apptest.Env, args ...string) (int, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	base := []string{"-sS", "-k", "--max-time", "10", "-o", out, "-w", "%{http_code}"}
	cmd := exec.Command("curl", append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v %s", args, err, stderr.String())
	}
	body, _ := os.ReadFile(out)
	var status int
	fmt.Sscan(string(code), &status)
	return status, string(body)
}

func (url urlOf) of(e *apptest.Env) string { return fmt.Sprintf("https://%s/%s", e.HTTPS, string(url)) }

type urlOf string

func TestHTTPSDigestAndBasicWithCurl(t *testing.T) {
	needCurl(t)
	e := apptest.Start(t, apptest.Options{})
	want := string(e.FromCloud(t, "001565123456.cfg?mac=001565123456"))
	url := urlOf("001565123456.cfg").of(e)
	for _, scheme := range []string{"--digest", "--basic"} {
		status, body := curlHTTPS(t, e, scheme, "-u", acmeUser+":"+acmePass, "-A", yealinkUA, "--interface", outside, url)
		if status != 200 || body != want {
			t.Fatalf("%s from outside the allow-list: %d %q", scheme, status, body)
		}
	}
	status, _ := curlHTTPS(t, e, "-A", yealinkUA, "--interface", outside, url)
	if status != 401 {
		t.Fatalf("no credentials from outside the allow-list: %d", status)
	}
	status, body := curlHTTPS(t, e, "-A", yealinkUA, url) // 127.0.0.1: allow-listed
	if status != 200 || body != want {
		t.Fatalf("allow-listed source without credentials: %d", status)
	}
	rows := e.AuditRows(t, audit.Filter{Source: outside})
	if rows[0].Reason != policy.DenyAuthRequired || rows[len(rows)-1].Reason != policy.DenyAuthRequired {
		t.Fatalf("audit %+v", rows)
	}
}

func TestHTTPSWrongPasswordThenLockout(t *testing.T) {
	needCurl(t)
	e := apptest.Start(t, apptest.Options{ExtraYAML: "policy:\n  max_denials: 3\n  cooldown: 1h\n"})
	url := urlOf("001565123456.cfg").of(e)
	for i := range 2 {
		status, _ := curlHTTPS(t, e, "--digest", "-u", acmeUser+":wrong", "-A", yealinkUA, "--interface", outside, url)
		if status != 401 {
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	rows := e.AuditRows(t, audit.Filter{Source: outside})
	if last := rows[len(rows)-1]; last.Reason != policy.DenyAuthFailed {
		t.Fatalf("audit %+v", last)
	}
	// Further tries push the source over the limit: even the right password
	// is then refused.
	curlHTTPS(t, e, "--basic", "-u", acmeUser+":wrong", "-A", yealinkUA, "--interface", outside, url)
	curlHTTPS(t, e, "--basic", "-u", acmeUser+":wrong", "-A", yealinkUA, "--interface", outside, url)
	status, _ := curlHTTPS(t, e, "--basic", "-u", acmeUser+":"+acmePass, "-A", yealinkUA, "--interface", outside, url)
	if status != 403 {
		t.Fatalf("locked-out source: %d", status)
	}
	rows = e.AuditRows(t, audit.Filter{Source: outside})
	if last := rows[len(rows)-1]; last.Reason != policy.DenySourceBlocked {
		t.Fatalf("audit %+v", last)
	}
}

func TestHTTPSIdentityChecks(t *testing.T) {
	needCurl(t)
	e := apptest.Start(t, apptest.Options{})
	for _, tc := range []struct {
		name, file, ua, reason string
		status                 int
	}{
		{"MAC of the User-Agent differs from the path's", "001565123456.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:65:43:21", policy.DenyMACConflict, 403},
		{"model of the User-Agent differs", "001565123456.cfg", "Yealink SIP-T54W 96.85.0.5 00:15:65:12:34:56", policy.DenyModelMismatch, 403},
		{"unknown MAC", "0015650000ff.cfg", "", policy.DenyUnknownMAC, 403},
		{"missing file", "nothing-here.cfg", "", "cloud_not_found", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := curlHTTPS(t, e, "-A", tc.ua, urlOf(tc.file).of(e))
			if status != tc.status || strings.Contains(body, "Sip-Secret") {
				t.Fatalf("%d %q", status, body)
			}
			rows := e.AuditRows(t, audit.Filter{Source: "127.0.0.1"})
			if last := rows[len(rows)-1]; last.Reason != tc.reason || last.Transport != "https" {
				t.Fatalf("audit %+v", last)
			}
		})
	}
	// Uploads are refused with Allow.
	status, _ := curlHTTPS(t, e, "-X", "PUT", "--data-binary", "log", urlOf("001565123456-app.log").of(e))
	if status != 405 {
		t.Fatalf("PUT: %d", status)
	}
}

// goClient is Go's HTTPS client, trusting anything (the gateway's
// certificate is self-signed here) and leaving from src.
func goClient(t *testing.T, src string, tlsConf *tls.Config) *http.Client {
	t.Helper()
	if tlsConf == nil {
		tlsConf = &tls.Config{InsecureSkipVerify: true}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsConf}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHTTPSETagAndHEAD(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	c := goClient(t, "127.0.0.1", nil)
	url := urlOf("000000000000.cfg").of(e)
	resp, body := get(t, c, url, nil)
	etag, size := resp.Header.Get("ETag"), resp.ContentLength
	if resp.StatusCode != 200 || etag == "" || size != int64(len(body)) {
		t.Fatalf("%d etag=%q len=%d", resp.StatusCode, etag, resp.ContentLength)
	}
	resp, body = get(t, c, url, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 || body != "" {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	head, err := c.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != size || head.Header.Get("ETag") != etag {
		t.Fatalf("HEAD: %d %d", head.StatusCode, head.ContentLength)
	}
}

// digestAuth answers a Digest challenge by hand (MD5), so a test can send
// the same answer twice.
func digestAuth(challenge, method, uri, user, pass, nc string) string {
	p := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(challenge, "Digest "), ", ") {
		k, v, _ := strings.Cut(part, "=")
		p[k] = strings.Trim(v, `"`)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + p["realm"] + ":" + pass)
	resp := h(ha1 + ":" + p["nonce"] + ":" + nc + ":c0ffee:auth:" + h(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="c0ffee", response="%s"`,
		user, p["realm"], p["nonce"], uri, nc, resp)
}

func md5Challenge(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(v, "Digest ") && strings.Contains(v, "algorithm=MD5") {
			return v
		}
	}
	t.Fatalf("no MD5 Digest challenge in %v", resp.Header.Values("WWW-Authenticate"))
	return ""
}

func TestHTTPSReplayedNonceIsRefused(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	c := goClient(t, outside, nil)
	url := urlOf("001565123456.cfg").of(e)
	resp, _ := get(t, c, url, map[string]string{"User-Agent": yealinkUA})
	if resp.StatusCode != 401 {
		t.Fatalf("challenge: %d", resp.StatusCode)
	}
	authz := digestAuth(md5Challenge(t, resp), "GET", "/001565123456.cfg", acmeUser, acmePass, "00000001")
	resp, _ = get(t, c, url, map[string]string{"User-Agent": yealinkUA, "Authorization": authz})
	if resp.StatusCode != 200 {
		t.Fatalf("first use: %d", resp.StatusCode)
	}
	resp, _ = get(t, c, url, map[string]string{"User-Agent": yealinkUA, "Authorization": authz})
	if resp.StatusCode != 401 || strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), " "), "stale=true") {
		t.Fatalf("replay: %d %v", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	next := digestAuth(md5Challenge(t, resp), "GET", "/001565123456.cfg", acmeUser, acmePass, "00000001")
	if resp, _ = get(t, c, url, map[string]string{"User-Agent": yealinkUA, "Authorization": next}); resp.StatusCode != 200 {
		t.Fatalf("fresh nonce after a replay: %d", resp.StatusCode)
	}
}

func TestHTTPSServesStaleWithTheCloudDown(t *testing.T) {
	e := apptest.Start(t, apptest.Options{Cloud: expireAtOnce, ExtraYAML: "  max_stale: 1h\n"})
	c := goClient(t, "127.0.0.1", nil)
	url := urlOf("0004f2abcdef.cfg").of(e)
	_, want := get(t, c, url, nil)
	e.Cloud.Stop()
	resp, body := get(t, c, url, nil)
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("cloud down: %d", resp.StatusCode)
	}
	e.WaitLog(t, "outcome=stale")
	resp, _ = get(t, c, urlOf("001565123456.cfg").of(e), nil) // never fetched
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("never cached, cloud down: %d", resp.StatusCode)
	}
}

// writePair writes a certificate for 127.0.0.1 signed by ca, with an RSA or
// ECDSA key.
func writePair(t *testing.T, ca *pki.CA, dir, name string) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.IssueServer(key.Public(), []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKey(filepath.Join(dir, name+".key"), key); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCert(filepath.Join(dir, name+".crt"), der); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPSCertificateReplacedOnDisk(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("site CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writePair(t, ca, dir, "https")
	e := apptest.Start(t, apptest.Options{HTTPSCerts: [][2]string{{filepath.Join(dir, "https.crt"), filepath.Join(dir, "https.key")}}})
	serial := func() string {
		conn, err := tls.Dial("tcp", e.HTTPS.String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	writePair(t, ca, dir, "https")
	if second := serial(); second == first {
		t.Fatal("new handshakes still present the old certificate")
	}
}

func TestHTTPSOffersRSAAndECDSAOverTLS12And13(t *testing.T) {
	dir := t.TempDir()
	rsaCert, rsaKey, _, err := httpsSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := pki.NewCA("site CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writePair(t, ca, dir, "ecdsa")
	e := apptest.Start(t, apptest.Options{HTTPSCerts: [][2]string{{rsaCert, rsaKey}, {filepath.Join(dir, "ecdsa.crt"), filepath.Join(dir, "ecdsa.key")}}})
	for _, tc := range []struct {
		name string
		conf *tls.Config
		want x509.PublicKeyAlgorithm
	}{
		{"TLS 1.2, RSA-only phone", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, x509.RSA},
		{"TLS 1.2, ECDSA phone", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, x509.ECDSA},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, x509.RSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.conf.InsecureSkipVerify = true
			resp, _ := get(t, goClient(t, "127.0.0.1", tc.conf), urlOf("000000000000.cfg").of(e), nil)
			if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].PublicKeyAlgorithm != tc.want {
				t.Fatalf("%d, %v", resp.StatusCode, resp.TLS.PeerCertificates[0].PublicKeyAlgorithm)
			}
		})
	}
}

func httpsSelfSigned(dir string) (cert, key string, created bool, err error) {
	return httpsfront.SelfSigned(dir, []string{"127.0.0.1"})
}

func TestHTTPSAndTFTPShareTheCache(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	tftpCopy, err := e.Fetch("001565123456.cfg", 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, goClient(t, "127.0.0.1", nil), urlOf("001565123456.cfg").of(e), map[string]string{"User-Agent": yealinkUA})
	if resp.StatusCode != 200 || body != string(tftpCopy) {
		t.Fatalf("%d", resp.StatusCode)
	}
	if got := e.Cloud.Server.Stats().Files; got != 1 {
		t.Fatalf("the cloud was asked %d times for one file over two transports", got)
	}
}
