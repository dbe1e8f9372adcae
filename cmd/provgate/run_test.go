package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// writeConfig writes a config pointing at a real cloud's PKI and returns
// its path; edit rewrites parts of it.
func writeConfig(t *testing.T, edit func(string) string) (path, dir string) {
	t.Helper()
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	dir = t.TempDir()
	cert, key := cloud.CertFiles(refcloudtest.Site)
	cfg := "cloud:\n  url: " + cloud.URL + "\n  ca: " + cloud.CAFile() + "\n  cert: " + cert + "\n  key: " + key +
		"\nlan:\n  networks: [127.0.0.0/8]\ntftp:\n  port: 16969\ncache:\n  path: cache.db\n  key_file: cache.key\n"
	if edit != nil {
		cfg = edit(cfg)
	}
	path = filepath.Join(dir, "provgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func runCmd(args ...string) (string, error) {
	var out, errs bytes.Buffer
	err := run(context.Background(), args, &out, &errs)
	return out.String() + errs.String(), err
}

func TestKeygenThenCheckConfig(t *testing.T) {
	path, dir := writeConfig(t, nil)
	keyPath := filepath.Join(dir, "cache.key")
	if out, err := runCmd("keygen", "--out", keyPath); err != nil || !strings.Contains(out, "key id") {
		t.Fatalf("keygen: %v %s", err, out)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	out, err := runCmd("check-config", "--config", path)
	if err != nil || !strings.Contains(out, "127.0.0.1:16969") {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
}

func TestRefusesToStartWithABadKey(t *testing.T) {
	tests := map[string]struct {
		prepare func(keyPath string)
		want    string
	}{
		"missing":        {func(string) {}, "does not exist"},
		"short":          {func(p string) { os.WriteFile(p, []byte("short"), 0o600) }, "holds 5 bytes"},
		"world-readable": {func(p string) { os.WriteFile(p, make([]byte, 32), 0o600); os.Chmod(p, 0o644) }, "mode 0644"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path, dir := writeConfig(t, nil)
			tc.prepare(filepath.Join(dir, "cache.key"))
			for _, cmd := range []string{"serve", "check-config"} {
				_, err := runCmd(cmd, "--config", path)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "provgate keygen") {
					t.Errorf("%s: %v", cmd, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "cache.db")); err == nil {
				t.Error("a cache database was created without a usable key")
			}
		})
	}
}

func TestInvalidConfigNamesTheField(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown key", func(c string) string { return c + "colour: blue\n" }, "field colour not found"},
		{"unknown nested key", func(c string) string { return strings.Replace(c, "  port: 16969", "  port: 16969\n  prot: 1", 1) }, "field prot not found"},
		{"bad port", func(c string) string { return strings.Replace(c, "port: 16969", "port: 70000", 1) }, "tftp.port: 70000"},
		{"bad CIDR", func(c string) string { return strings.Replace(c, "127.0.0.0/8", "127.0.0.0/40", 1) }, "lan.networks[0]"},
		{"plain http cloud", func(c string) string { return strings.Replace(c, "url: https://", "url: http://", 1) }, "cloud.url"},
		{"missing cert", func(c string) string { return strings.Replace(c, "  cert: ", "  certificate_typo: ", 1) }, "certificate_typo"},
		{"bad size", func(c string) string { return c + "  max_size: lots\n" }, `"lots" is not a size`},
		{"bad duration", func(c string) string { return c + "  max_stale: forever\n" }, "forever"},
		{"bad blksize", func(c string) string {
			return strings.Replace(c, "  port: 16969", "  port: 16969\n  max_block_size: 100", 1)
		}, "tftp.max_block_size: 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := writeConfig(t, tt.edit)
			for _, cmd := range []string{"check-config", "serve"} {
				_, err := runCmd(cmd, "--config", path)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: %v, want mention of %q", cmd, err, tt.want)
				}
			}
		})
	}
}
