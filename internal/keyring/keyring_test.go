package keyring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, mode)
		os.Chmod(p, mode)
		return p
	}
	cases := map[string]struct {
		path string
		want string
	}{
		"missing":        {filepath.Join(dir, "nope"), "does not exist"},
		"short":          {write("short", make([]byte, 16), 0o600), "holds 16 bytes"},
		"long":           {write("long", make([]byte, 64), 0o600), "more than 32"},
		"world-readable": {write("open", make([]byte, 32), 0o644), "mode 0644"},
		"group-writable": {write("grp", make([]byte, 32), 0o620), "mode 0620"},
	}
	for name, tc := range cases {
		_, err := LoadKeyFile(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "provgate keygen") {
			t.Errorf("%s: %v", name, err)
		}
	}
	k, err := WriteKeyFile(filepath.Join(dir, "good"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteKeyFile(filepath.Join(dir, "good")); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	again, err := LoadKeyFile(filepath.Join(dir, "good"))
	if err != nil || again.ID != k.ID {
		t.Fatalf("reload: %v", err)
	}
}

func TestSealBindsAssociatedData(t *testing.T) {
	k, err := NewKey(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal([]byte("secret"), []byte("here"))
	if got, err := k.Open(nil, sealed, []byte("here")); err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open(nil, sealed, []byte("there")); err != ErrOpen {
		t.Fatalf("other associated data opened: %v", err)
	}
	again := k.Seal([]byte("secret"), []byte("here"))
	if string(again[:12]) == string(sealed[:12]) {
		t.Fatal("nonce reused")
	}
	if string(k.Lookup("a")) == string(k.Lookup("b")) || len(k.Lookup("a")) != 32 {
		t.Fatal("lookup digests")
	}
}
