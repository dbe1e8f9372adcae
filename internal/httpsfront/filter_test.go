package httpsfront

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

func TestSocketFilterAdmitsOnlyTheLAN(t *testing.T) {
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !ln.Filtered() {
		t.Skip("this kernel does not attach socket filters; connections are closed at accept instead (tested end to end)")
	}
	dial := func(src string) error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial("127.0.0.2"); err != nil {
		t.Fatalf("LAN source: %v", err)
	}
	if err := dial("127.0.0.1"); err == nil {
		t.Fatal("a source outside the LAN completed a TCP handshake")
	}
	if err := ln.SetLAN([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	if err := dial("127.0.0.1"); err != nil {
		t.Fatalf("after SetLAN: %v", err)
	}
}

func TestWildcardRefused(t *testing.T) {
	if _, err := Listen(context.Background(), netip.MustParseAddrPort("0.0.0.0:0"), nil); err == nil {
		t.Fatal("listened on a wildcard address")
	}
}

// TestLANFilterProgram runs the filter in x/net/bpf's virtual machine on
// IP headers: sources in the LAN are accepted, others dropped.
func TestLANFilterProgram(t *testing.T) {
	lan := []netip.Prefix{
		netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00:20::/64"), netip.MustParsePrefix("fe80::/10"),
	}
	header := func(src netip.Addr) []byte {
		if src.Is4() {
			h := make([]byte, 20)
			copy(h[12:], src.AsSlice())
			return h
		}
		h := make([]byte, 40)
		copy(h[8:], src.AsSlice())
		return h
	}
	identity := func(off int) uint32 { return uint32(off) }
	for _, is6 := range []bool{false, true} {
		prog, err := lanFilter(lan, is6, identity)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		for src, want := range map[string]bool{
			"10.20.3.4": true, "10.21.0.1": false, "192.168.1.7": true, "192.168.1.8": false, "203.0.113.5": false,
			"fd00:20::1": true, "fd00:20:0:1::1": false, "fe80::1234": true, "2001:db8::1": false,
		} {
			a := netip.MustParseAddr(src)
			if a.Is6() != is6 {
				continue
			}
			n, err := vm.Run(header(a))
			if err != nil {
				t.Fatal(err)
			}
			if (n != 0) != want {
				t.Errorf("%s: accepted=%v, want %v", src, n != 0, want)
			}
		}
	}
	if prog, _ := lanFilter(nil, false, identity); len(prog) != 2 {
		t.Fatalf("empty LAN: %d instructions, want drop and accept only", len(prog))
	}
}
