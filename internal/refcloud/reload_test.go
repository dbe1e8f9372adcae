package refcloud_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/refcloud"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil"
)

const newDevice = `
          - mac: 001565000777
            brand: yealink
            model: T46S
            vars: {ext: "1777", sip_password: "Sip-Secret-1777"}
`

// addDevice inserts a Yealink into tenant acme of a copy of the sample inventory.
func addDevice(t *testing.T, inv []byte) []byte {
	t.Helper()
	marker := "        devices:\n"
	i := bytes.Index(inv, []byte(marker))
	if i < 0 {
		t.Fatal("sample inventory changed shape")
	}
	i += len(marker)
	return append(append(append([]byte{}, inv[:i]...), strings.TrimPrefix(newDevice, "\n")...), inv[i:]...)
}

// replaceFile swaps a file in the way editors do: write aside, rename over.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchReloadsGoodEditsAndKeepsLastGoodData(t *testing.T) {
	data := refcloudtest.CopySample(t)
	logs := &testutil.SyncBuffer{}
	cloud := refcloudtest.Start(t, refcloudtest.Options{DataDir: data, Watch: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	c := cloud.Client(t, refcloudtest.Site)
	status := func() int {
		resp, _ := get(t, c, cloud.URL, originapi.PathFiles+"001565000777.cfg?mac=001565000777", nil)
		return resp.StatusCode
	}
	if got := status(); got != http.StatusForbidden {
		t.Fatalf("before the edit: %d", got)
	}

	invPath := filepath.Join(data, refcloud.InventoryFile)
	orig, err := os.ReadFile(invPath)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, invPath, addDevice(t, orig))
	testutil.Eventually(t, func() bool { return status() == http.StatusOK })

	// A broken edit: the new device stays served, and the log says why.
	replaceFile(t, invPath, []byte("sites:\n  - id: demo-site\n    tenants: [{id: acme, bogus_key: 1}]\n"))
	testutil.Eventually(t, func() bool { return strings.Contains(logs.String(), "keeping last good data") })
	if !strings.Contains(logs.String(), "bogus_key") {
		t.Errorf("log does not name the bad field:\n%s", logs.String())
	}
	if got := status(); got != http.StatusOK {
		t.Fatalf("after a broken edit: %d", got)
	}
}

func TestReloadReportsTheBadField(t *testing.T) {
	data := refcloudtest.CopySample(t)
	srv, err := refcloud.New(refcloud.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	invPath := filepath.Join(data, refcloud.InventoryFile)
	orig, _ := os.ReadFile(invPath)
	cases := map[string]struct{ from, to, want string }{
		"bad MAC":       {`"00:15:65:12:34:56"`, `"00:15:65:12:34"`, "sites[0]: tenants[0].devices[0].mac"},
		"duplicate MAC": {"0004f2abcdef", "001565123456", "tenants[0].devices[1].mac: 001565123456 is already a device"},
		"bad CIDR":      {"10.20.0.0/16", "10.20.0.0/33", "tenants[0].allow_cidrs[2]"},
		"brand case":    {"brand: polycom", "brand: Polycom", "tenants[0].devices[1].brand"},
		"bad scheme":    {"[digest, basic]", "[digest, ntlm]", "tenants[0].options.auth_schemes[1]"},
		"unknown key":   {"realm: acme-phones", "realm: acme-phones\n        colour: blue", "colour"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			edited := strings.Replace(string(orig), tc.from, tc.to, 1)
			if edited == string(orig) {
				t.Fatalf("sample lacks %q", tc.from)
			}
			replaceFile(t, invPath, []byte(edited))
			err := srv.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload() = %v, want mention of %q", err, tc.want)
			}
		})
	}
	replaceFile(t, invPath, orig)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
}
