// Package lan decides which networks are the site's LAN and which host
// addresses the gateway may listen on. Nothing is ever bound to a wildcard
// address, and a source outside the LAN is never served.
package lan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"
	socktmpl "github.com/hashicorp/go-sockaddr/template"
)

// DefaultRFCs are the private ranges that count as LAN when nothing else is
// configured: RFC 1918 (IPv4 private), RFC 6598 (carrier-grade NAT shared
// space, common on managed LANs) and RFC 4193 (IPv6 unique local).
const DefaultRFCs = "1918|6598|4193"

// Config chooses the LAN. At most one of Networks and Template is set; with
// neither, the host's interface addresses in DefaultRFCs are the LAN.
type Config struct {
	// Networks lists the LAN explicitly; the gateway listens on each host
	// address inside them.
	Networks []netip.Prefix
	// Template is a go-sockaddr template yielding the addresses to listen
	// on; their interfaces' networks are the LAN. It runs with "." bound to
	// the host's interfaces (the same as GetAllInterfaces).
	Template string
	// LinkLocal adds IPv6 link-local addresses (fe80::/10, with their zone)
	// of interfaces that have a LAN address.
	LinkLocal bool
}

// Address is a host address to listen on, with the network it serves.
type Address struct {
	Addr    netip.Addr // with zone for link-local IPv6
	Network netip.Prefix
	Iface   string
}

// LAN is the result of discovery: immutable, safe for concurrent use.
type LAN struct {
	networks []netip.Prefix
	addrs    []Address
}

// ErrNoAddress means discovery found no address to listen on.
var ErrNoAddress = errors.New("lan: no LAN address on this host (check lan.networks or lan.template)")

// Discover evaluates cfg against the host's interfaces now.
func Discover(cfg Config) (*LAN, error) {
	ifs, err := sockaddr.GetAllInterfaces()
	if err != nil {
		return nil, fmt.Errorf("lan: list interfaces: %w", err)
	}
	return discover(cfg, ifs)
}

func discover(cfg Config, ifs sockaddr.IfAddrs) (*LAN, error) {
	var chosen sockaddr.IfAddrs
	switch {
	case len(cfg.Networks) > 0 && cfg.Template != "":
		return nil, errors.New("lan: set networks or template, not both")
	case len(cfg.Networks) > 0:
		chosen = ifs
	case cfg.Template != "":
		out, err := socktmpl.ParseIfAddrs(cfg.Template, ifs)
		if err != nil {
			return nil, fmt.Errorf("lan: template: %w", err)
		}
		for _, f := range strings.Fields(out) {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("lan: template yielded %q, not an IP address", f)
			}
			i := slices.IndexFunc(ifs, func(ia sockaddr.IfAddr) bool { ip, _ := ifAddr(ia); return ip.Addr == a })
			if i < 0 {
				return nil, fmt.Errorf("lan: template yielded %s, which no interface has", a)
			}
			chosen = append(chosen, ifs[i])
		}
	default:
		matched, _, err := sockaddr.IfByRFCs(DefaultRFCs, ifs)
		if err != nil {
			return nil, fmt.Errorf("lan: %w", err)
		}
		chosen = matched
	}

	l := &LAN{}
	lanIfaces := map[string]bool{}
	for _, ia := range chosen {
		a, ok := ifAddr(ia)
		if !ok || a.Addr.Is6() && a.Addr.IsLinkLocalUnicast() {
			continue
		}
		if len(cfg.Networks) > 0 {
			i := slices.IndexFunc(cfg.Networks, func(p netip.Prefix) bool { return p.Contains(a.Addr) })
			if i < 0 {
				continue
			}
			a.Network = cfg.Networks[i]
		}
		l.add(a)
		lanIfaces[a.Iface] = true
	}
	if cfg.LinkLocal {
		for _, ia := range ifs {
			a, ok := ifAddr(ia)
			if ok && a.Addr.Is6() && a.Addr.IsLinkLocalUnicast() && lanIfaces[a.Iface] {
				a.Addr = a.Addr.WithZone(a.Iface)
				l.add(a)
			}
		}
	}
	for _, p := range cfg.Networks {
		if !slices.Contains(l.networks, p) {
			l.networks = append(l.networks, p)
		}
	}
	if len(l.addrs) == 0 {
		return nil, ErrNoAddress
	}
	return l, nil
}

func (l *LAN) add(a Address) {
	if slices.ContainsFunc(l.addrs, func(b Address) bool { return b.Addr == a.Addr }) {
		return
	}
	l.addrs = append(l.addrs, a)
	if !slices.Contains(l.networks, a.Network) {
		l.networks = append(l.networks, a.Network)
	}
}

func ifAddr(ia sockaddr.IfAddr) (Address, bool) {
	ip, ok := ia.SockAddr.(sockaddr.IPAddr)
	if !ok {
		return Address{}, false
	}
	addr, ok := netip.AddrFromSlice(ip.NetIP().To16())
	if !ok {
		return Address{}, false
	}
	addr = addr.Unmap()
	ones, _ := ip.NetIPNet().Mask.Size()
	return Address{Addr: addr, Network: netip.PrefixFrom(addr, ones).Masked(), Iface: ia.Interface.Name}, true
}

// Contains reports whether ip is on the LAN. IPv4-mapped IPv6 addresses are
// judged as IPv4, and zones are ignored.
func (l *LAN) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range l.networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Addresses returns the host addresses to listen on.
func (l *LAN) Addresses() []Address { return slices.Clone(l.addrs) }

// Networks returns the LAN networks.
func (l *LAN) Networks() []netip.Prefix { return slices.Clone(l.networks) }
