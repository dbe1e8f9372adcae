package httpsfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Listen binds a TCP socket to addr (a specific address, never a
// wildcard) with a kernel socket filter that drops every packet, SYN
// included, whose source is outside lan: a host off the LAN cannot even
// complete a TCP handshake. SetLAN changes the filter in place. Where the
// kernel refuses socket filters (Filtered reports false), connections from
// outside the LAN are closed as soon as they are accepted, before TLS.
func Listen(ctx context.Context, addr netip.AddrPort, lan []netip.Prefix) (*Listener, error) {
	if addr.Addr().IsUnspecified() {
		return nil, fmt.Errorf("httpsfront: refusing to listen on wildcard address %s", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("httpsfront: listen %s: %w", addr, err)
	}
	l := &Listener{TCPListener: ln.(*net.TCPListener), is6: addr.Addr().Is6() && !addr.Addr().Is4In6()}
	if err := l.SetLAN(lan); err != nil && !errors.Is(err, errNoFilter) {
		ln.Close()
		return nil, err
	}
	return l, nil
}

// Listener is a TCP listener whose socket filter admits LAN sources only.
type Listener struct {
	*net.TCPListener
	is6      bool
	filtered bool
}

// Filtered reports whether the kernel filters the socket's sources.
func (l *Listener) Filtered() bool { return l.filtered }

// errNoFilter means this kernel does not attach socket filters.
var errNoFilter = errors.New("httpsfront: the kernel does not support socket filters here")

// SetLAN replaces the socket filter with one admitting lan.
func (l *Listener) SetLAN(lan []netip.Prefix) error {
	prog, err := lanFilter(lan, l.is6, netOff)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("httpsfront: socket filter: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	rc, err := l.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), syscall.SOL_SOCKET, syscall.SO_ATTACH_FILTER, &fprog)
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.EOPNOTSUPP) || errors.Is(serr, unix.ENOPROTOOPT) || errors.Is(serr, unix.EINVAL) && !l.filtered {
		return errNoFilter
	}
	if serr != nil {
		return fmt.Errorf("httpsfront: attach socket filter: %w", serr)
	}
	l.filtered = true
	return nil
}

// skfNetOff is SKF_NET_OFF: negative offsets address the network header.
const skfNetOff = -0x100000

func netOff(off int) uint32 { return uint32(int32(skfNetOff + off)) }

// lanFilter builds a classic BPF program accepting packets whose IP source
// lies in one of the prefixes of the socket's family and dropping the rest.
// at maps an offset into the IP header to a load offset (netOff in the
// kernel; the identity for tests on raw headers).
func lanFilter(lan []netip.Prefix, is6 bool, at func(int) uint32) ([]bpf.Instruction, error) {
	type word struct{ off, mask, val uint32 }
	var blocks [][]word
	for _, p := range lan {
		p = p.Masked()
		if p.Addr().Is6() != is6 {
			continue
		}
		a := p.Addr().AsSlice()
		srcOff := 12 // IPv4 source address
		if is6 {
			srcOff = 8
		}
		var ws []word
		for i := 0; i < len(a)/4; i++ {
			bits := min(max(p.Bits()-32*i, 0), 32)
			if bits == 0 {
				break
			}
			mask := ^uint32(0) << (32 - bits)
			val := uint32(a[4*i])<<24 | uint32(a[4*i+1])<<16 | uint32(a[4*i+2])<<8 | uint32(a[4*i+3])
			ws = append(ws, word{at(srcOff + 4*i), mask, val & mask})
		}
		blocks = append(blocks, ws)
	}
	// Each block: per word, load, mask, jump to the next block when
	// different; then jump to accept. After the blocks: drop; accept.
	size := func(b []word) int { return 3*len(b) + 1 }
	var prog []bpf.Instruction
	for i, b := range blocks {
		after := 1 // the drop instruction
		for _, later := range blocks[i+1:] {
			after += size(later)
		}
		if after > 255 {
			return nil, errors.New("httpsfront: too many LAN networks for a socket filter")
		}
		for j, w := range b {
			prog = append(prog,
				bpf.LoadAbsolute{Off: w.off, Size: 4},
				bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: w.mask},
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: w.val, SkipTrue: uint8(3*(len(b)-1-j) + 1)},
			)
		}
		prog = append(prog, bpf.Jump{Skip: uint32(after)})
	}
	return append(prog, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: 0xffffffff}), nil
}
