package app_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/testutil/netlab"
)

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
	e := apptest.Start(t, apptest.Options{LAN: []string{"10.99.1.0/24"}})

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
	e := apptest.Start(t, apptest.Options{LAN: []string{"10.99.2.0/24"}, TFTPPort: port})
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
