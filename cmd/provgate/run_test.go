package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
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

// One public example per brand (see internal/device's table for sources).
func TestIdentifyPrintsOneJSONLine(t *testing.T) {
	tests := []struct{ file, ua, want string }{
		{"0004f2abcdef.cfg", "FileTransport PolycomVVX-VVX_411-UA/6.4.3.5018 Type/Application", `{"brand":"polycom","model":"VVX_411","mac":"0004f2abcdef","kind":"config-device"}`},
		{"y000000000000.boot", "", `{"brand":"yealink","model":"","mac":"","kind":"config-common"}`},
		{"SEP001B54AABB01.cnf.xml", "", `{"brand":"cisco","model":"","mac":"001b54aabb01","kind":"config-device"}`},
		{"gxp2170fw.bin", "", `{"brand":"grandstream","model":"GXP2170","mac":"","kind":"firmware"}`},
		{"snomD785-000413778899.htm", "", `{"brand":"snom","model":"D785","mac":"000413778899","kind":"config-device"}`},
		{"", "Aastra6867i MAC:00-08-5D-12-34-56 V:4.2.0.2023-SIP", `{"brand":"mitel","model":"6867i","mac":"00085d123456","kind":"other"}`},
		{"", "Fanvil X6U 2.12.1 0c383e123456", `{"brand":"fanvil","model":"X6U","mac":"0c383e123456","kind":"other"}`},
		{"Config0080F0123456.cfg", "", `{"brand":"panasonic","model":"","mac":"0080f0123456","kind":"config-device"}`},
		{"46xxsettings.txt", "", `{"brand":"avaya","model":"","mac":"","kind":"config-common"}`},
		{"cfg001fc1123456.xml", "Htek UC924 2.0.4.4.37 00:1f:c1:12:34:56", `{"brand":"htek","model":"UC924","mac":"001fc1123456","kind":"config-device"}`},
		{"", "Gigaset N670 IP PRO/83.V2.39.0+build.6ba4b1d;7C2F80123456", `{"brand":"gigaset","model":"N670 IP PRO","mac":"7c2f80123456","kind":"other"}`},
		{"config.3c28a6123456.xml", "", `{"brand":"alcatel","model":"","mac":"3c28a6123456","kind":"config-device"}`},
		{"", "AUDC-IPPhone/2.2.8.69 (445HD; 00908F123456)", `{"brand":"audiocodes","model":"445HD","mac":"00908f123456","kind":"other"}`},
		{"", "OBIHAI/OBi202-3.2.2.5921", `{"brand":"obihai","model":"OBi202","mac":"","kind":"other"}`},
		{"001565123456.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:65:43:21", `{"brand":"yealink","model":"T46S","mac":"001565123456","kind":"config-device","conflict":"mac"}`},
	}
	for _, tt := range tests {
		args := []string{"identify"}
		if tt.file != "" {
			args = append(args, "--file", tt.file)
		}
		if tt.ua != "" {
			args = append(args, "--user-agent", tt.ua)
		}
		out, err := runCmd(args...)
		if err != nil || out != tt.want+"\n" {
			t.Errorf("identify %q %q:\n got %s want %s", tt.file, tt.ua, out, tt.want)
		}
	}
}

// TestInventoryShowsWhatTheGatewayDecidesFrom reads the inventory a running
// gateway keeps in its cache, with the cloud gone.
func TestInventoryShowsWhatTheGatewayDecidesFrom(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	e.Cloud.Stop()
	out, err := runCmd("inventory", "--config", e.ConfigPath, "--devices")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"site demo-site: 2 tenants, 6 devices; the cloud last vouched for it ",
		"tenant acme: allow 127.0.0.0/29 ::1/128 10.20.0.0/16; auth digest,basic; 1 credentials; credentials accepted outside the allow-list",
		"tenant globex: allow 127.0.0.16/29 10.30.0.0/16; auth digest; 1 credentials; credentials required in the allow-list",
		"device 00:15:65:12:34:56 yealink T46S tenant=acme",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "acme-http-secret") {
		t.Fatal("a password was printed")
	}
}
