package lan

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

func ifaddrs(t *testing.T, spec map[string][]string) sockaddr.IfAddrs {
	t.Helper()
	var out sockaddr.IfAddrs
	idx := 1
	for _, name := range []string{"lo", "eth0", "eth1", "wan0"} {
		for _, cidr := range spec[name] {
			sa, err := sockaddr.NewIPAddr(cidr)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sockaddr.IfAddr{SockAddr: sa, Interface: net.Interface{Index: idx, Name: name, Flags: net.FlagUp}})
		}
		idx++
	}
	return out
}

var host = map[string][]string{
	"lo":   {"127.0.0.1/8", "::1/128"},
	"eth0": {"192.168.10.5/24", "fd00:10::5/64", "fe80::1/64"},
	"eth1": {"100.64.3.9/22"},
	"wan0": {"203.0.113.7/24", "2001:db8::7/64", "192.0.2.2/24"},
}

func addrs(l *LAN) []string {
	var s []string
	for _, a := range l.Addresses() {
		s = append(s, a.Addr.String())
	}
	return s
}

func TestDefaultIsPrivateRangesOnly(t *testing.T) {
	l, err := discover(Config{}, ifaddrs(t, host))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"100.64.3.9", "192.168.10.5", "fd00:10::5"}
	got := addrs(l)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	for ip, lan := range map[string]bool{
		"192.168.10.77": true, "fd00:10::99": true, "100.64.0.1": true, "::ffff:192.168.10.8": true,
		"192.168.11.1": false, "203.0.113.8": false, "2001:db8::8": false, "127.0.0.1": false, "10.1.1.1": false, "192.0.2.3": false,
	} {
		if got := l.Contains(netip.MustParseAddr(ip)); got != lan {
			t.Errorf("Contains(%s) = %v", ip, got)
		}
	}
}

func TestExplicitNetworks(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.20.0.0/16")}
	l, err := discover(Config{Networks: nets}, ifaddrs(t, host))
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(l); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("addresses %v", got)
	}
	if !l.Contains(netip.MustParseAddr("10.20.4.4")) || l.Contains(netip.MustParseAddr("192.168.10.5")) {
		t.Fatal("explicit networks not honoured")
	}
	if _, err := discover(Config{Networks: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}}, ifaddrs(t, host)); err != ErrNoAddress {
		t.Fatalf("no host address in the networks: %v", err)
	}
}

// In a template, "." is the host's interfaces (tests pass made-up ones);
// GetAllInterfaces reads the host's own.
func TestTemplate(t *testing.T) {
	l, err := discover(Config{Template: `{{ . | include "name" "eth1" | join "address" " " }}`}, ifaddrs(t, host))
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(l); !slices.Equal(got, []string{"100.64.3.9"}) {
		t.Fatalf("addresses %v", got)
	}
	if !l.Contains(netip.MustParseAddr("100.64.0.200")) || l.Contains(netip.MustParseAddr("192.168.10.5")) {
		t.Fatal("network of the template's address not used")
	}
	if _, err := discover(Config{Template: `{{ "not-an-ip" }}`}, ifaddrs(t, host)); err == nil {
		t.Fatal("bad template output accepted")
	}
}

func TestLinkLocalWithZone(t *testing.T) {
	l, err := discover(Config{LinkLocal: true}, ifaddrs(t, host))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs(l), "fe80::1%eth0") {
		t.Fatalf("addresses %v", addrs(l))
	}
	if !l.Contains(netip.MustParseAddr("fe80::abcd%eth0")) {
		t.Fatal("link-local source refused")
	}
	plain, _ := discover(Config{}, ifaddrs(t, host))
	if plain.Contains(netip.MustParseAddr("fe80::abcd%eth0")) {
		t.Fatal("link-local served without link_local")
	}
}
