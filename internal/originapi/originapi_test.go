package originapi

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestReprDigestRoundTrip(t *testing.T) {
	sum := sha256.Sum256([]byte("hello"))
	v := FormatReprDigest(sum[:])
	// sha256("hello"), base64 by coreutils.
	if v != "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:" {
		t.Fatalf("FormatReprDigest = %q", v)
	}
	for _, header := range []string{v, "sha-512=:AAAA:, " + v, "  " + v + "  "} {
		got, err := ParseReprDigest(header)
		if err != nil || !bytes.Equal(got, sum[:]) {
			t.Errorf("ParseReprDigest(%q) = %x, %v", header, got, err)
		}
	}
}

func TestParseReprDigestRejects(t *testing.T) {
	for _, v := range []string{"", "sha-512=:AAAA:", "sha-256=AAAA", "sha-256=:!!:", "sha-256=:AAAA:"} {
		if _, err := ParseReprDigest(v); err == nil {
			t.Errorf("ParseReprDigest(%q) accepted", v)
		}
	}
}

func TestHA1(t *testing.T) {
	// RFC 7616 section 3.9.1: Mufasa / http-auth@example.org / Circle of Life.
	// Known answers computed independently (Python hashlib).
	for alg, want := range map[string]string{
		"MD5":     "3d78807defe7de2157e2b0b6573a855f",
		"SHA-256": "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
	} {
		got, err := HA1(alg, "Mufasa", "http-auth@example.org", "Circle of Life")
		if err != nil || got != want {
			t.Errorf("HA1(%s) = %q, %v; want %q", alg, got, err, want)
		}
	}
	if _, err := HA1("SHA-512-256", "a", "b", "c"); err == nil {
		t.Fatal("unsupported algorithm accepted")
	}
}

func FuzzParseReprDigest(f *testing.F) {
	f.Add("sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:")
	f.Add("sha-512=:AAAA:, sha-256=::")
	f.Fuzz(func(t *testing.T, v string) {
		if sum, err := ParseReprDigest(v); err == nil && len(sum) != sha256.Size {
			t.Fatalf("accepted a %d-byte digest", len(sum))
		}
	})
}
