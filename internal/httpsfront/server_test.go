package httpsfront

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/certfile"
	"github.com/provgate/provgate/internal/gateway"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/policy"
)

// fileGateway serves one fixed body for any allowed request.
type fileGateway struct{ body string }

func (g fileGateway) Open(ctx context.Context, req gateway.Request) (*gateway.File, error) {
	return &gateway.File{ReadCloser: io.NopCloser(strings.NewReader(g.body)), Size: int64(len(g.body)), ETag: `"e1"`, Outcome: gateway.OutcomeHit}, nil
}

func newTestServer(t *testing.T) *Server {
	t.Helper()
	md5ha1, _ := originapi.HA1("MD5", "acme-prov", "acme-phones", "secret")
	shaha1, _ := originapi.HA1("SHA-256", "acme-prov", "acme-phones", "secret")
	ix, err := inventory.NewIndex(&originapi.Inventory{
		Tenants: []originapi.Tenant{{
			ID: "acme", Realm: "acme-phones", AllowCIDRs: []string{"10.20.0.0/16"},
			Credentials: []originapi.Credential{{Username: "acme-prov", HA1MD5: md5ha1, HA1SHA256: shaha1}},
			Options:     originapi.TenantOptions{AuthAllowedOutsideAllowlist: true, AuthSchemes: []string{"digest"}},
		}},
		Devices: []originapi.Device{{MAC: "001565123456", Brand: "yealink", Model: "T46S", Tenant: "acme"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	inv := func() *inventory.Index { return ix }
	pol := policy.New(policy.Config{}, netip.MustParsePrefix("10.0.0.0/8").Contains, inv, nil, nil)
	if _, err := New(fileGateway{"config"}, pol, inv, Config{}); err == nil {
		t.Fatal("a server without certificates was made")
	}
	cert, key, _, err := SelfSigned(t.TempDir(), []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := certfile.New(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(fileGateway{"config"}, pol, inv, Config{Certificates: []*certfile.Reloader{pair}, NonceLifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(s *Server, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/001565123456.cfg", nil)
	r.RemoteAddr = "10.50.0.9:40000" // LAN, outside acme's allow-list
	r.Header.Set("User-Agent", "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func answer(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var ch string
	for _, v := range w.Header().Values("WWW-Authenticate") {
		if strings.Contains(v, "algorithm=MD5") {
			ch = v
		}
	}
	if ch == "" {
		t.Fatalf("no MD5 challenge: %v", w.Header())
	}
	p, err := parseAuthParams(strings.TrimPrefix(ch, "Digest "))
	if err != nil {
		t.Fatal(err)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h("acme-prov:" + p["realm"] + ":secret")
	resp := h(ha1 + ":" + p["nonce"] + ":00000001:abc:auth:" + h("GET:/001565123456.cfg"))
	return fmt.Sprintf(`Digest username="acme-prov", realm=%q, nonce=%q, uri="/001565123456.cfg", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc", response=%q`, p["realm"], p["nonce"], resp)
}

func TestExpiredNonceGetsStale(t *testing.T) {
	s := newTestServer(t)
	now := time.Now()
	s.nonces.now = func() time.Time { return now }
	w := do(s, nil)
	if w.Code != 401 {
		t.Fatalf("challenge: %d", w.Code)
	}
	authz := answer(t, w)
	now = now.Add(2 * time.Minute) // past the nonce lifetime
	w = do(s, map[string]string{"Authorization": authz})
	if w.Code != 401 || !strings.Contains(strings.Join(w.Header().Values("WWW-Authenticate"), " "), "stale=true") {
		t.Fatalf("expired nonce: %d %v", w.Code, w.Header().Values("WWW-Authenticate"))
	}
	w = do(s, map[string]string{"Authorization": answer(t, w)})
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), []byte("config")) {
		t.Fatalf("fresh nonce: %d", w.Code)
	}
}

func TestDigestAnswerForAnotherURIIsRefused(t *testing.T) {
	s := newTestServer(t)
	w := do(s, nil)
	authz := strings.Replace(answer(t, w), `uri="/001565123456.cfg"`, `uri="/other.cfg"`, 1)
	if w = do(s, map[string]string{"Authorization": authz}); w.Code != 401 {
		t.Fatalf("answer for another URI: %d", w.Code)
	}
}
