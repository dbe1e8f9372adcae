package app_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/policy"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil/netlab"
)

// allowLab returns sample data whose tenant acme also allows the lab
// hosts' networks (10.99.0.0/16).
func allowLab(t *testing.T) string {
	t.Helper()
	data := refcloudtest.CopySample(t)
	inv := filepath.Join(data, "inventory.yaml")
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("allow_cidrs: [127.0.0.0/29,"), []byte("allow_cidrs: [10.99.0.0/16, 127.0.0.0/29,"), 1)
	if err := os.WriteFile(inv, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestOnlyLANHostsGetFiles builds a LAN host and a WAN host on veth pairs.
// The gateway's LAN is the LAN host's network: it listens only there, the
// LAN host gets its file, and the WAN host, which can reach that address
// through its own link, gets nothing.
func TestOnlyLANHostsGetFiles(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (.ci/run installs it)")
	}
	lanHost := netlab.NewHost(t, "10.99.1.2/24", "10.99.1.1/24", "")
	wanHost := netlab.NewHost(t, "198.51.100.2/24", "198.51.100.1/24", "")
	e := apptest.Start(t, apptest.Options{LAN: []string{"10.99.1.0/24"}, Cloud: refcloudtest.Options{DataDir: allowLab(t)}})

	want := netip.AddrPortFrom(lanHost.Peer, e.TFTP.Port())
	if addrs := e.App.TFTPAddrs(); len(addrs) != 1 || addrs[0] != want {
		t.Fatalf("TFTP bound to %v, want only %v", addrs, want)
	}
	url := fmt.Sprintf("tftp://%s/000000000000.cfg", want)
	out, err := lanHost.Command("curl", "-sS", "--max-time", "10", url).Output()
	if err != nil || !bytes.Equal(out, e.FromCloud(t, "000000000000.cfg")) {
		t.Fatalf("LAN host: %v %q", err, out)
	}
	err = wanHost.Command("curl", "-sS", "--max-time", "10", url).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("WAN host got the file (err %v)", err)
	}
	if got := e.App.TFTPStats().NonLAN; got != 1 {
		t.Fatalf("non-LAN requests counted: %d", got)
	}
	e.WaitLog(t, "request from outside the LAN refused")
	e.WaitLog(t, "client=198.51.100.2")

	// HTTPS: the LAN host is served; the WAN host gets no HTTP answer at
	// all, not even a TLS handshake (its SYN is filtered where the kernel
	// filters sockets, its connection closed at accept elsewhere).
	httpsURL := fmt.Sprintf("https://%s/000000000000.cfg", netip.AddrPortFrom(lanHost.Peer, e.HTTPS.Port()))
	code, err := lanHost.Command("curl", "-sS", "-k", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", httpsURL).Output()
	if err != nil || string(code) != "200" {
		t.Fatalf("LAN host over HTTPS: %v %s", err, code)
	}
	code, err = wanHost.Command("curl", "-sS", "-k", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", httpsURL).Output()
	if err == nil || string(code) != "000" {
		t.Fatalf("WAN host over HTTPS: %v, status %s", err, code)
	}
	if rows := e.AuditRows(t, audit.Filter{Source: wanHost.Addr.String()}); len(rows) != 1 || rows[0].Transport != "tftp" {
		t.Fatalf("the WAN host's HTTPS attempt reached the policy: %+v", rows)
	}
	// Where the kernel has no socket filters, the fallback closed it at accept.
	if strings.Contains(e.Logs.String(), "does not filter sockets") && e.App.HTTPSStats().RejectedConns != 1 {
		t.Fatalf("connections closed at accept: %d", e.App.HTTPSStats().RejectedConns)
	}
}

// TestReloadFollowsTheLAN adds a network to the config and reloads: the
// gateway opens a listener on the new LAN address and serves its hosts.
func TestReloadFollowsTheLAN(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (.ci/run installs it)")
	}
	first := netlab.NewHost(t, "10.99.2.2/24", "10.99.2.1/24", "")
	second := netlab.NewHost(t, "10.99.3.2/24", "10.99.3.1/24", "")
	const port = 16971
	e := apptest.Start(t, apptest.Options{LAN: []string{"10.99.2.0/24"}, TFTPPort: port, Cloud: refcloudtest.Options{DataDir: allowLab(t)}})
	fetch := func(h *netlab.Host, wait string) error {
		return h.Command("curl", "-sS", "--max-time", wait, "-o", "/dev/null", fmt.Sprintf("tftp://%s:%d/000000000000.cfg", h.Peer, port)).Run()
	}
	if err := fetch(first, "10"); err != nil {
		t.Fatalf("first LAN: %v", err)
	}
	if fetch(second, "2") == nil {
		t.Fatal("second network served before it was configured")
	}
	cfg, _ := os.ReadFile(e.ConfigPath)
	os.WriteFile(e.ConfigPath, bytes.Replace(cfg, []byte("[10.99.2.0/24]"), []byte("[10.99.2.0/24, 10.99.3.0/24]"), 1), 0o644)
	e.Reload <- struct{}{}
	e.WaitLog(t, "configuration reloaded")
	if err := fetch(second, "10"); err != nil {
		t.Fatalf("second LAN after reload: %v", err)
	}
	// A config that does not load changes nothing.
	os.WriteFile(e.ConfigPath, []byte("lan: [broken\n"), 0o644)
	e.Reload <- struct{}{}
	e.WaitLog(t, "reload failed, keeping the running configuration")
	if err := fetch(second, "10"); err != nil {
		t.Fatalf("after a bad reload: %v", err)
	}
}

// TestNeighbourTableStopsSpoofedMACs puts hosts with chosen MAC addresses
// on veth links. With verify_l2, a host gets its own file, not another
// device's, and a host whose MAC is not in the inventory gets no common file.
func TestNeighbourTableStopsSpoofedMACs(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (.ci/run installs it)")
	}
	yealink := netlab.NewHost(t, "10.99.6.2/24", "10.99.6.1/24", "00:15:65:12:34:56")
	stranger := netlab.NewHost(t, "10.99.7.2/24", "10.99.7.1/24", "02:00:00:00:00:99")
	e := apptest.Start(t, apptest.Options{
		LAN:       []string{"10.99.6.0/24", "10.99.7.0/24"},
		Cloud:     refcloudtest.Options{DataDir: allowLab(t)},
		ExtraYAML: "policy:\n  verify_l2: true\n",
		TFTPPort:  16972, // one port on both addresses
	})
	port := e.TFTP.Port()
	fetch := func(h *netlab.Host, file string) error {
		return h.Command("curl", "-sS", "--max-time", "10", "-o", "/dev/null", fmt.Sprintf("tftp://%s:%d/%s", h.Peer, port, file)).Run()
	}
	lastReason := func(h *netlab.Host) string {
		rows := e.AuditRows(t, audit.Filter{Source: h.Addr.String()})
		if len(rows) == 0 {
			t.Fatalf("no audit rows for %s: %+v\n%s", h.Addr, e.AuditRows(t, audit.Filter{}), e.Logs.String())
		}
		return rows[len(rows)-1].Reason
	}
	if err := fetch(yealink, "001565123456.cfg"); err != nil {
		t.Fatalf("own file: %v (%s)", err, lastReason(yealink))
	}
	if err := fetch(yealink, "000000000000.cfg"); err != nil {
		t.Fatalf("common file to a device of the tenant: %v (%s)", err, lastReason(yealink))
	}
	if fetch(yealink, "0004f2abcdef.cfg") == nil {
		t.Fatal("served another device's file")
	}
	if r := lastReason(yealink); r != policy.DenyL2Mismatch {
		t.Fatalf("reason %s", r)
	}
	if fetch(stranger, "000000000000.cfg") == nil {
		t.Fatal("served a common file to a MAC outside the inventory")
	}
	if r := lastReason(stranger); r != policy.DenyL2Unknown {
		t.Fatalf("reason %s", r)
	}
}
