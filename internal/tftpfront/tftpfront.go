// Package tftpfront adapts TFTP (RFC 1350, with the blksize and tsize
// options of RFC 2348 and RFC 2349) to the gateway. It serves read
// requests only, from LAN sources only, and puts nothing on the wire but a
// short fixed phrase when it refuses; the cause goes to the log.
package tftpfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/device"
	"github.com/provgate/provgate/internal/filename"
	"github.com/provgate/provgate/internal/gateway"
	"github.com/provgate/provgate/internal/policy"
)

// The phrases sent to clients. pin/tftp sends a read handler's error text
// as the TFTP error message, so these are the only texts a handler returns.
var (
	errAccess      = errors.New("access denied")
	errNotFound    = errors.New("file not found")
	errIllegalName = errors.New("illegal file name")
	errBusy        = errors.New("server busy, retry later")
	errUnavailable = errors.New("service unavailable, retry later")
)

// Opener is what the TFTP front needs of the gateway.
type Opener interface {
	Open(ctx context.Context, req gateway.Request) (*gateway.File, error)
}

// Authorizer is what the TFTP front needs of the policy.
type Authorizer interface {
	OnLAN(ip netip.Addr) bool
	Decide(req policy.Request) policy.Decision
	Refuse(req policy.Request, reason string)
	CloudDenied(req policy.Request, d policy.Decision, cloudReason string)
}

// Config tunes the TFTP front.
type Config struct {
	MaxBlockSize int           // largest blksize granted (default 1468)
	MaxTransfers int           // transfers at once; more get "server busy"
	Timeout      time.Duration // retransmit timeout
	Retries      int           // retransmits before a transfer is dropped
	OpenTimeout  time.Duration // how long a request may wait for the cloud
	Logger       *slog.Logger
}

// Stats counts what the front did.
type Stats struct {
	Served, Refused, NonLAN, Busy, BadName int64
}

// Server serves TFTP on any number of bound sockets.
type Server struct {
	cfg    Config
	gw     Opener
	auth   Authorizer
	sem    chan struct{}
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	served, refused, nonLAN, busy, badName atomic.Int64
}

// New returns a TFTP front that asks auth and serves from gw.
func New(gw Opener, auth Authorizer, cfg Config) *Server {
	if cfg.MaxBlockSize <= 0 {
		cfg.MaxBlockSize = 1468
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 4096
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, gw: gw, auth: auth, sem: make(chan struct{}, cfg.MaxTransfers), log: cfg.Logger}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Served: s.served.Load(), Refused: s.refused.Load(), NonLAN: s.nonLAN.Load(), Busy: s.busy.Load(), BadName: s.badName.Load()}
}

// Listen binds a UDP socket to addr, which must be a specific address,
// with its receive buffer raised to readBuffer bytes (beyond the system
// cap when the process may: SO_RCVBUFFORCE), so a boot storm's requests
// wait in the kernel rather than being dropped.
func Listen(ctx context.Context, addr netip.AddrPort, readBuffer int) (*net.UDPConn, error) {
	if addr.Addr().IsUnspecified() {
		return nil, fmt.Errorf("tftpfront: refusing to listen on wildcard address %s", addr)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if readBuffer <= 0 {
			return nil
		}
		return rc.Control(func(fd uintptr) {
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, readBuffer) != nil {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, readBuffer)
			}
		})
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("tftpfront: listen %s: %w", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// Serve answers TFTP on conn until ctx ends; then it stops taking requests
// and waits up to grace for transfers under way.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn, grace time.Duration) error {
	srv := tftp.NewServer(s.handleRead, s.handleWrite)
	srv.SetBlockSize(s.cfg.MaxBlockSize)
	srv.SetTimeout(s.cfg.Timeout)
	srv.SetRetries(s.cfg.Retries)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conn) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancel() // abort transfers still waiting on the gateway
		<-done
	}
	return <-errc
}

// handleWrite refuses every write request; phones that upload logs are
// told so and the attempt is logged.
func (s *Server) handleWrite(fname string, wt io.WriterTo) error {
	client := clientOf(wt)
	s.refused.Add(1)
	s.log.Warn("write request refused", "client", client.String(), "file", filename.Quote(fname))
	s.auth.Refuse(policy.Request{Transport: policy.TFTP, Source: client, File: filename.Quote(fname)}, policy.DenyBadRequest)
	return errAccess
}

func (s *Server) handleRead(fname string, rf io.ReaderFrom) error {
	start := time.Now()
	client := clientOf(rf)
	req := policy.Request{Transport: policy.TFTP, Source: client, File: filename.Quote(fname)}
	log := s.log.With("client", client.String())
	if !s.auth.OnLAN(client) {
		s.nonLAN.Add(1)
		s.auth.Refuse(req, policy.DenyNotLAN)
		log.Warn("request from outside the LAN refused", "file", req.File)
		return errAccess
	}
	name, err := filename.Clean(fname)
	if err != nil {
		s.badName.Add(1)
		s.auth.Refuse(req, policy.DenyBadRequest)
		log.Warn("illegal file name refused", "file", req.File, "err", err)
		return errIllegalName
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.busy.Add(1)
		log.Warn("transfer cap reached, request refused", "file", name, "max_transfers", s.cfg.MaxTransfers)
		return errBusy
	}
	req.File, req.Identity = name, device.Identify(name, "")
	id := req.Identity
	log = log.With("mac", id.MAC, "file", name)
	dec := s.auth.Decide(req)
	if !dec.Allow {
		s.refused.Add(1)
		return errAccess // the policy logged and audited why
	}
	log = log.With("tenant", dec.Tenant)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpenTimeout)
	defer cancel()
	f, err := s.gw.Open(ctx, gateway.Request{
		Name: name, MAC: id.MAC, Brand: id.Brand, Model: id.Model, Tenant: dec.Tenant, Transport: policy.TFTP, Client: client,
	})
	if err != nil {
		s.refused.Add(1)
		var refused *gateway.RefusedError
		if errors.As(err, &refused) {
			s.auth.CloudDenied(req, dec, refused.Reason)
		}
		wire := wireError(err)
		log.Warn("transfer refused", "outcome", gateway.OutcomeError, "reply", wire.Error(), "err", err, "duration", time.Since(start))
		return wire
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(f.Size)
	}
	n, err := rf.ReadFrom(f)
	attrs := []any{"bytes", n, "size", f.Size, "outcome", f.Outcome, "reason", dec.Reason, "duration", time.Since(start)}
	if err != nil {
		log.Warn("transfer failed", append(attrs, "err", err)...)
		return nil // pin/tftp has already ended the transfer
	}
	s.served.Add(1)
	log.Info("transfer", attrs...)
	return nil
}

func wireError(err error) error {
	switch {
	case errors.Is(err, gateway.ErrDenied):
		return errAccess
	case errors.Is(err, gateway.ErrNotFound):
		return errNotFound
	}
	return errUnavailable
}

type remote interface{ RemoteAddr() net.UDPAddr }

func clientOf(t any) netip.Addr {
	r, ok := t.(remote)
	if !ok {
		return netip.Addr{}
	}
	ua := r.RemoteAddr()
	return ua.AddrPort().Addr().Unmap()
}
