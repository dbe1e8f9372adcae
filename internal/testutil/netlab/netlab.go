// Package netlab builds test hosts in network namespaces: each host is a
// namespace joined to this one by a veth pair, with chosen addresses and
// MAC. Tests that use it need root and iproute2; they skip otherwise.
package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Require skips t unless network namespaces can be made here.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command (.ci/run installs it)")
	}
}

// Host is a network namespace with one interface.
type Host struct {
	NS   string
	Addr netip.Addr // the host's address
	Peer netip.Addr // this namespace's end of the link
	MAC  string     // the host's interface MAC
}

var seq atomic.Int32

// NewHost creates a namespace whose interface has hostCIDR (and mac, if not
// empty), linked to this namespace where the other end has peerCIDR. The
// host's default route points at the peer. Removed when the test ends.
func NewHost(t testing.TB, hostCIDR, peerCIDR, mac string) *Host {
	t.Helper()
	Require(t)
	n := seq.Add(1)
	ns := fmt.Sprintf("pgt%d-%d", os.Getpid()%100000, n)
	outer := fmt.Sprintf("pgo%d%d", os.Getpid()%10000, n)
	inner := fmt.Sprintf("pgi%d%d", os.Getpid()%10000, n)
	hp, err := netip.ParsePrefix(hostCIDR)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := netip.ParsePrefix(peerCIDR)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
	t.Cleanup(func() { exec.Command("ip", "link", "del", outer).Run() })
	run(t, "ip", "link", "set", inner, "netns", ns)
	if mac != "" {
		run(t, "ip", "-n", ns, "link", "set", inner, "address", mac)
	}
	run(t, "ip", "addr", "add", peerCIDR, "dev", outer)
	run(t, "ip", "link", "set", outer, "up")
	run(t, "ip", "-n", ns, "addr", "add", hostCIDR, "dev", inner)
	run(t, "ip", "-n", ns, "link", "set", inner, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "route", "add", "default", "via", pp.Addr().String())
	h := &Host{NS: ns, Addr: hp.Addr(), Peer: pp.Addr()}
	if mac != "" {
		h.MAC = strings.ToLower(mac)
	}
	return h
}

// Command runs a program inside the host.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
