package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/policy"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil"
)

// Sources in the sample inventory: acme allows 127.0.0.0/29, globex
// (credentials required) 127.0.0.16/29; 127.0.0.100 is in no allow-list.
func TestEachDenialHasItsReasonInTheAudit(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	tests := []struct {
		name, src, file, reason string
	}{
		{"unknown MAC", "127.0.0.1", "0015650000ff.cfg", policy.DenyUnknownMAC},
		{"brand mismatch (a Yealink asking as a Cisco)", "127.0.0.1", "SEP001565123456.cnf.xml", policy.DenyBrandMismatch},
		{"model mismatch (a D735 asking as a D715)", "127.0.0.1", "snomD715-000413AABBCC.htm", policy.DenyModelMismatch},
		{"MAC conflict", "127.0.0.1", "001565123456-0004f2abcdef.cfg", policy.DenyMACConflict},
		{"source outside every allow-list", "127.0.0.100", "000000000000.cfg", policy.DenyNotAllowlisted},
		{"device asked from outside its tenant's allow-list", "127.0.0.100", "001565123456.cfg", policy.DenyNotAllowlisted},
		{"tenant that requires credentials", "127.0.0.17", "000000000000.cfg", policy.DenyAuthRequired},
		{"its device, over TFTP", "127.0.0.17", "000413778899.xml", policy.DenyAuthRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.FetchAs(tt.src, tt.file)
			if err == nil || !strings.Contains(err.Error(), "access denied") {
				t.Fatalf("fetch: %v", err)
			}
			rows := e.AuditRows(t, audit.Filter{Source: tt.src})
			last := rows[len(rows)-1]
			if last.File != tt.file || last.Decision != "deny" || last.Reason != tt.reason {
				t.Fatalf("audit row %+v, want reason %s", last, tt.reason)
			}
		})
	}
	if _, err := e.FetchAs("127.0.0.1", "001565123456.cfg"); err != nil {
		t.Fatalf("allowed device: %v", err)
	}
	rows := e.AuditRows(t, audit.Filter{MAC: "001565123456", Source: "127.0.0.1"})
	if last := rows[len(rows)-1]; last.Decision != "allow" || last.Reason != policy.AllowAllowlist || last.Tenant != "acme" {
		t.Fatalf("allow row %+v", last)
	}
	if got := e.Cloud.Server.Stats().Files; got != 1 {
		t.Fatalf("the cloud saw %d file requests; only the allowed one may reach it", got)
	}
}

func TestAllowedCasesWorkWithTheCloudStopped(t *testing.T) {
	data, image := withFirmware(t, 300<<10)
	e := apptest.Start(t, apptest.Options{Cloud: cloudWith(data)})
	allowed := []string{"001565123456.cfg", "0004f2abcdef.cfg", "SEP001B54AABB01.cnf.xml", "cfg000b82a1b2c3.xml", "000000000000.cfg", "y000000000000.cfg", "sip.ld"}
	want := map[string][]byte{}
	for _, name := range allowed {
		b, err := e.FetchAs("127.0.0.1", name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[name] = b
	}
	if string(want["sip.ld"]) != string(image) {
		t.Fatal("firmware differs")
	}
	// A reboot with the cloud gone: inventory and files come from the cache.
	e.Cloud.Stop()
	e.Restart(t)
	if _, known := e.App.InventoryAge(); !known {
		t.Fatal("no inventory after an offline restart")
	}
	for _, name := range allowed {
		got, err := e.FetchAs("127.0.0.1", name)
		if err != nil || string(got) != string(want[name]) {
			t.Fatalf("offline %s: %v", name, err)
		}
	}
	for file, src := range map[string]string{"0015650000ff.cfg": "127.0.0.1", "SEP001565123456.cnf.xml": "127.0.0.1", "000000000000.cfg": "127.0.0.100"} {
		if _, err := e.FetchAs(src, file); err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("offline %s from %s: %v", file, src, err)
		}
	}
}

func TestScannerIsCutOffThenLetBackIn(t *testing.T) {
	e := apptest.Start(t, apptest.Options{ExtraYAML: "policy:\n  max_denials: 5\n  denial_window: 1m\n  cooldown: 1s\n"})
	const scanner = "127.0.0.3"
	for i := range 6 {
		e.FetchAs(scanner, fmt.Sprintf("00156500%04x.cfg", i))
	}
	if _, err := e.FetchAs(scanner, "001565123456.cfg"); err == nil {
		t.Fatal("a source past its denials was served")
	}
	rows := e.AuditRows(t, audit.Filter{Source: scanner})
	if last := rows[len(rows)-1]; last.Reason != policy.DenySourceBlocked {
		t.Fatalf("last row %+v", last)
	}
	if _, err := e.FetchAs("127.0.0.1", "001565123456.cfg"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	// Let back in once the one-second cool-down is over (polled, not timed).
	testutil.Eventually(t, func() bool { _, err := e.FetchAs(scanner, "001565123456.cfg"); return err == nil })
}

func TestScanOfMadeUpMACsNeverReachesTheCloud(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	before := e.Cloud.Server.Stats().Files
	var wg sync.WaitGroup
	var served atomic.Int32
	next := atomic.Int32{}
	for range 20 {
		wg.Go(func() {
			for i := next.Add(1); i <= 1000; i = next.Add(1) {
				if _, err := e.FetchAs("127.0.0.4", fmt.Sprintf("0015%08x.cfg", i)); err == nil {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if served.Load() != 0 {
		t.Fatalf("%d made-up MACs served", served.Load())
	}
	if got := e.Cloud.Server.Stats().Files - before; got != 0 {
		t.Fatalf("the scan caused %d cloud requests", got)
	}
	if rows := e.AuditRows(t, audit.Filter{Source: "127.0.0.4", Limit: 2000}); len(rows) != 1000 {
		t.Fatalf("%d audit rows for 1000 requests", len(rows))
	}
}

// TestCloudStillAuthorizes moves a device to another tenant at the cloud
// only: the gateway's inventory still allows it, the cloud refuses, and
// the cloud's reason is what the audit records.
func TestCloudStillAuthorizes(t *testing.T) {
	data := refcloudtest.CopySample(t)
	e := apptest.Start(t, apptest.Options{Cloud: cloudWith(data)})
	inv := filepath.Join(data, "inventory.yaml")
	b, _ := os.ReadFile(inv)
	moved := strings.Replace(string(b), `          - mac: "00:15:65:12:34:56"
            brand: yealink
            model: T46S
            vars: {ext: "1001", sip_password: "Sip-Secret-1001-acme"}
`, "", 1)
	moved = strings.Replace(moved, "        devices:\n          - mac: 000413778899", "        devices:\n          - {mac: 001565123456, brand: yealink, model: T46S}\n          - mac: 000413778899", 1)
	if moved == string(b) {
		t.Fatal("sample inventory changed shape")
	}
	os.WriteFile(inv, []byte(moved), 0o644)
	if err := e.Cloud.Server.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.FetchAs("127.0.0.1", "001565123456.cfg"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("fetch: %v", err)
	}
	rows := e.AuditRows(t, audit.Filter{MAC: "001565123456"})
	if len(rows) != 2 || rows[0].Decision != "allow" || rows[1].Reason != "cloud_tenant_mismatch" {
		t.Fatalf("audit %+v", rows)
	}
}
