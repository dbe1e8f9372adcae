package httpsfront

import (
	"testing"
	"time"

	"github.com/provgate/provgate/internal/originapi"
)

// RFC 7616, section 3.9.1: the example with MD5 and with SHA-256.
func TestRFC7616Vectors(t *testing.T) {
	const (
		user   = "Mufasa"
		realm  = "http-auth@example.org"
		pass   = "Circle of Life"
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
		uri    = "/dir/index.html"
	)
	for alg, want := range map[string]string{
		"MD5":     "8ca523f5e9506fed4657c9700eebdbec",
		"SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
	} {
		ha1, err := originapi.HA1(alg, user, realm, pass)
		if err != nil {
			t.Fatal(err)
		}
		got, err := digestResponse(alg, ha1, nonce, "00000001", cnonce, "auth", "GET", uri)
		if err != nil || got != want {
			t.Errorf("%s: response %s, want %s (%v)", alg, got, want, err)
		}
	}
}

func TestParseAuthParams(t *testing.T) {
	p, err := parseAuthParams(`username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nc=00000001, qop=auth, response="75", opaque="a\"b"`)
	if err != nil {
		t.Fatal(err)
	}
	if p["username"] != "Mufasa" || p["nc"] != "00000001" || p["algorithm"] != "SHA-256" || p["opaque"] != `a"b` {
		t.Fatalf("%v", p)
	}
	for _, bad := range []string{`username="unterminated`, `=x`, `a=1, a=2`} {
		if _, err := parseAuthParams(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestNonces(t *testing.T) {
	n := newNonces(time.Minute)
	now := time.Now()
	n.now = func() time.Time { return now }
	a := n.issue()
	if err := n.use(a, "00000001"); err != nil {
		t.Fatal(err)
	}
	if err := n.use(a, "00000001"); err != errNonceReplay {
		t.Fatalf("replay: %v", err)
	}
	if err := n.use(a, "00000002"); err != nil {
		t.Fatalf("next count: %v", err)
	}
	if err := n.use(newNonces(time.Minute).issue(), "00000001"); err != errNonceInvalid {
		t.Fatalf("foreign nonce: %v", err)
	}
	b := n.issue()
	now = now.Add(2 * time.Minute)
	if err := n.use(b, "00000001"); err != errNonceStale {
		t.Fatalf("expired nonce: %v", err)
	}
	if err := n.use("garbage", "00000001"); err != errNonceInvalid {
		t.Fatalf("garbage: %v", err)
	}
}

func FuzzParseAuthParams(f *testing.F) {
	f.Add(`username="Mufasa", realm="x", nc=00000001`)
	f.Add(`a="\\`)
	f.Fuzz(func(t *testing.T, s string) { parseAuthParams(s) })
}
