// Package neigh reads the kernel's neighbour table (ARP for IPv4, NDP for
// IPv6) over rtnetlink, to learn the link-layer address behind a source
// IP on a directly connected segment.
package neigh

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Entry states without a usable link-layer address.
const (
	nudIncomplete = 0x01
	nudFailed     = 0x20
)

// Table looks up neighbours. The zero value is ready to use.
type Table struct{}

// Lookup returns the MAC (12 lowercase hex digits) the kernel has for ip,
// and whether ip is on a directly connected network of this host. A
// directly connected address with no usable entry gives mac "".
func (Table) Lookup(ip netip.Addr) (mac string, onLink bool, err error) {
	ip = ip.Unmap()
	onLink, err = connected(ip)
	if err != nil || !onLink {
		return "", onLink, err
	}
	entries, err := dump()
	if err != nil {
		return "", true, err
	}
	return entries[ip.WithZone("")], true, nil
}

// connected reports whether ip is inside the network of one of this
// host's interface addresses (link-local IPv6 always is).
func connected(ip netip.Addr) (bool, error) {
	if ip.Is6() && ip.IsLinkLocalUnicast() {
		return true, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("neigh: %w", err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() {
			continue
		}
		p, err := netip.ParsePrefix(n.String())
		if err == nil && p.Masked().Contains(ip.WithZone("")) {
			return true, nil
		}
	}
	return false, nil
}

// dump reads every neighbour entry with a link-layer address.
func dump() (map[netip.Addr]string, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETNEIGH, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("neigh: netlink: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("neigh: netlink: %w", err)
	}
	out := map[netip.Addr]string{}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWNEIGH || len(m.Data) < 12 {
			continue
		}
		// struct ndmsg: family u8, pad u8, pad u16, ifindex s32, state u16, flags u8, type u8
		state := binary.NativeEndian.Uint16(m.Data[8:10])
		if state&(nudIncomplete|nudFailed) != 0 {
			continue
		}
		var dst netip.Addr
		var lladdr []byte
		for b := m.Data[12:]; len(b) >= 4; {
			l := int(binary.NativeEndian.Uint16(b[0:2]))
			typ := binary.NativeEndian.Uint16(b[2:4])
			if l < 4 || l > len(b) {
				break
			}
			val := b[4:l]
			switch typ {
			case 1: // NDA_DST
				dst, _ = netip.AddrFromSlice(val)
			case 2: // NDA_LLADDR
				lladdr = val
			}
			b = b[min(len(b), (l+3)&^3):]
		}
		if dst.IsValid() && len(lladdr) == 6 && string(lladdr) != "\x00\x00\x00\x00\x00\x00" {
			out[dst.Unmap()] = fmt.Sprintf("%x", lladdr)
		}
	}
	return out, nil
}
