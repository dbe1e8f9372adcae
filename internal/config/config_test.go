package config

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The documented example must stay valid and show the defaults.
func TestExampleConfigIsValidAndShowsDefaults(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	example := filepath.Join(filepath.Dir(file), "..", "..", "configs", "provgate.yaml")
	c, err := Load(example)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse([]byte("cloud: {url: https://c, ca: a, cert: b, key: c}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.TFTPEnabled() {
		t.Fatal("example disables TFTP")
	}
	d.Cloud, d.TFTP.Enabled = c.Cloud, c.TFTP.Enabled
	d.resolvePaths("/")
	if c.TFTP != d.TFTP || c.Cache != d.Cache || c.Log != d.Log || c.LAN.Template != d.LAN.Template || c.LAN.LinkLocal != d.LAN.LinkLocal {
		t.Fatalf("example differs from the defaults:\n%+v\n%+v", c, d)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("cloud: {url: https://c:9443, ca: a, cert: b, key: c}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TFTP.Port != 69 || c.TFTP.MaxBlockSize != 1468 || c.Cache.MaxStale != 168*time.Hour || *c.Cloud.Retries != 2 || !c.TFTPEnabled() {
		t.Fatalf("defaults: %+v", c)
	}
	zero, err := Parse([]byte("cloud: {url: https://c:9443, ca: a, cert: b, key: c, retries: 0}\n"))
	if err != nil || *zero.Cloud.Retries != 0 {
		t.Fatalf("retries: 0 must stay 0: %v", err)
	}
}

func TestEmptyConfigNamesEveryRequiredField(t *testing.T) {
	_, err := Parse(nil)
	for _, field := range []string{"cloud.url", "cloud.ca", "cloud.cert", "cloud.key"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("missing %s not reported: %v", field, err)
		}
	}
}
