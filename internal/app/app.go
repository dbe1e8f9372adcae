// Package app wires provgate together and runs it: configuration, the
// encrypted cache, the cloud client, the gateway and the TFTP listeners on
// LAN addresses, supervised with errgroup, reloaded on SIGHUP and shut
// down gracefully.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/config"
	"github.com/provgate/provgate/internal/gateway"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/keyring"
	"github.com/provgate/provgate/internal/lan"
	"github.com/provgate/provgate/internal/neigh"
	"github.com/provgate/provgate/internal/origin"
	"github.com/provgate/provgate/internal/policy"
	"github.com/provgate/provgate/internal/tftpfront"
)

// ShutdownGrace is how long transfers under way may finish at shutdown.
const ShutdownGrace = 10 * time.Second

// App is a configured, bound gateway.
type App struct {
	cfgPath string
	cfg     *config.Config
	log     *slog.Logger
	store   *cache.Store
	audit   *audit.Log
	origin  *origin.Client
	inv     *inventory.Syncer
	policy  *policy.Policy
	gw      *gateway.Gateway
	tftp    *tftpfront.Server

	mu        sync.Mutex
	lan       *lan.LAN
	listeners map[netip.AddrPort]context.CancelFunc
	pending   []*boundConn // bound by New or a reload, not yet served
	group     *errgroup.Group
	groupCtx  context.Context
}

type boundConn struct {
	addr netip.AddrPort
	conn *net.UDPConn
}

// NewLogger builds the logger the config asks for.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// New opens everything cfg names and binds the TFTP listeners, so that a
// misconfiguration fails here, before anything is served. cfgPath is
// re-read on Reload ("" disables reloading).
func New(ctx context.Context, cfg *config.Config, cfgPath string, log *slog.Logger) (_ *App, err error) {
	a := &App{cfgPath: cfgPath, cfg: cfg, log: log, listeners: map[netip.AddrPort]context.CancelFunc{}}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	key, err := keyring.LoadKeyFile(cfg.Cache.KeyFile)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{cfg.Cache.Path, cfg.Audit.Path} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
	}
	if a.store, err = cache.Open(cfg.Cache.Path, key, cache.Options{MaxBytes: int64(cfg.Cache.MaxSize), Logger: log}); err != nil {
		return nil, err
	}
	if a.audit, err = audit.Open(cfg.Audit.Path, key, audit.Options{Retention: cfg.Audit.Retention, MaxRows: cfg.Audit.MaxRows, Logger: log}); err != nil {
		return nil, err
	}
	if a.origin, err = origin.New(origin.Config{
		URL: cfg.Cloud.URL, CAFile: cfg.Cloud.CA, CertFile: cfg.Cloud.Cert, KeyFile: cfg.Cloud.Key,
		Timeout: cfg.Cloud.Timeout, Retries: *cfg.Cloud.Retries, MaxConcurrent: cfg.Cloud.MaxConcurrent, Logger: log,
	}); err != nil {
		return nil, err
	}
	a.gw = gateway.New(a.store, a.origin, gateway.Config{
		MaxStale: cfg.Cache.MaxStale, NegativeTTL: cfg.Cache.NegativeTTL, Logger: log,
	})
	a.inv = inventory.NewSyncer(a.origin, a.store, log)
	if err := a.inv.LoadCached(ctx); err != nil && !errors.Is(err, cache.ErrNotFound) {
		log.Warn("no usable cached inventory", "err", err)
	}
	syncCtx, cancel := context.WithTimeout(ctx, cfg.Cloud.Timeout)
	if err := a.inv.Sync(syncCtx); err != nil {
		age, known := a.inv.Age(time.Now())
		log.Warn("inventory sync at start failed, deciding from the cached copy", "err", err, "known", known, "inventory_age", age.Round(time.Second))
	}
	cancel()
	if a.lan, err = discoverLAN(cfg); err != nil {
		return nil, err
	}
	a.policy = policy.New(policy.Config{
		VerifyL2: cfg.Policy.VerifyL2, MaxDenials: cfg.Policy.MaxDenials, DenialWindow: cfg.Policy.DenialWindow,
		Cooldown: cfg.Policy.Cooldown, Logger: log,
	}, a.lan.Contains, a.inv.Current, neigh.Table{}, a.audit)
	a.tftp = tftpfront.New(a.gw, a.policy, tftpfront.Config{
		MaxBlockSize: cfg.TFTP.MaxBlockSize, MaxTransfers: cfg.TFTP.MaxTransfers,
		Timeout: cfg.TFTP.Timeout, Retries: cfg.TFTP.Retries, Logger: log,
	})
	if cfg.TFTPEnabled() {
		for _, ap := range tftpAddrs(a.lan, cfg.TFTP.Port) {
			if err := a.bind(ctx, ap); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

func discoverLAN(cfg *config.Config) (*lan.LAN, error) {
	return lan.Discover(lan.Config{Networks: cfg.LANNetworks(), Template: cfg.LAN.Template, LinkLocal: cfg.LAN.LinkLocal})
}

func tftpAddrs(l *lan.LAN, port int) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range l.Addresses() {
		out = append(out, netip.AddrPortFrom(a.Addr, uint16(port)))
	}
	return out
}

func (a *App) bind(ctx context.Context, ap netip.AddrPort) error {
	conn, err := tftpfront.Listen(ctx, ap, int(a.cfg.TFTP.ReadBuffer))
	if err != nil {
		return err
	}
	bound := netip.MustParseAddrPort(conn.LocalAddr().String())
	a.pending = append(a.pending, &boundConn{addr: bound, conn: conn})
	return nil
}

// TFTPAddrs lists the addresses TFTP is bound to.
func (a *App) TFTPAddrs() []netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Collect(maps.Keys(a.listeners))
	for _, p := range a.pending {
		out = append(out, p.addr)
	}
	slices.SortFunc(out, func(x, y netip.AddrPort) int { return x.Compare(y) })
	return out
}

// Gateway exposes the read path (for status and tests).
func (a *App) Gateway() *gateway.Gateway { return a.gw }

// Audit exposes the audit log (for tests).
func (a *App) Audit() *audit.Log { return a.audit }

// InventoryAge is how long ago the cloud last vouched for the inventory in
// force; known is false when there is none.
func (a *App) InventoryAge() (age time.Duration, known bool) { return a.inv.Age(time.Now()) }

// TFTPStats exposes the TFTP counters.
func (a *App) TFTPStats() tftpfront.Stats { return a.tftp.Stats() }

// Serve runs until ctx ends or a listener fails; reload asks for a reload
// (SIGHUP). Shutdown lets transfers under way finish for ShutdownGrace.
func (a *App) Serve(ctx context.Context, reload <-chan struct{}) error {
	defer a.close()
	g, gctx := errgroup.WithContext(ctx)
	a.mu.Lock()
	a.group, a.groupCtx = g, gctx
	a.startPending()
	a.mu.Unlock()
	age, known := a.inv.Age(time.Now())
	a.log.Info("provgate ready", "tftp", addrList(a.TFTPAddrs()), "lan", prefixList(a.lan.Networks()), "cloud", a.cfg.Cloud.URL,
		"devices", len(a.inv.Current().Devices), "inventory_known", known, "inventory_age", age.Round(time.Second))
	g.Go(func() error { return a.audit.Run(gctx) })
	g.Go(func() error { return a.inv.Run(gctx, a.cfg.Inventory.Refresh) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-reload:
				if err := a.Reload(gctx); err != nil {
					a.log.Error("reload failed, keeping the running configuration", "err", err)
				}
			}
		}
	})
	err := g.Wait()
	a.log.Info("provgate stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startPending serves the sockets bound but not yet served. a.mu held.
func (a *App) startPending() {
	for _, p := range a.pending {
		lctx, cancel := context.WithCancel(a.groupCtx)
		a.listeners[p.addr] = cancel
		a.group.Go(func() error {
			err := a.tftp.Serve(lctx, p.conn, ShutdownGrace)
			p.conn.Close()
			if lctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp %s: %w", p.addr, err)
		})
	}
	a.pending = nil
}

// Reload re-reads the config file and re-evaluates the LAN: the source
// filter follows the new networks at once, listeners are opened on new LAN
// addresses and closed on vanished ones. Cloud and cache settings take
// effect at the next restart. A config that does not load changes nothing.
func (a *App) Reload(ctx context.Context) error {
	if a.cfgPath == "" {
		return errors.New("no config file to reload")
	}
	cfg, err := config.Load(a.cfgPath)
	if err != nil {
		return err
	}
	l, err := discoverLAN(cfg)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := map[netip.AddrPort]bool{}
	if cfg.TFTPEnabled() {
		for _, ap := range tftpAddrs(l, cfg.TFTP.Port) {
			want[ap] = true
		}
	}
	var opened []netip.AddrPort
	for ap := range want {
		if _, ok := a.listeners[ap]; !ok {
			if err := a.bind(ctx, ap); err != nil {
				for _, p := range a.pending {
					p.conn.Close()
				}
				a.pending = nil
				return err
			}
			opened = append(opened, ap)
		}
	}
	a.lan = l
	a.policy.SetLAN(l.Contains)
	var closed []netip.AddrPort
	for ap, cancel := range a.listeners {
		if !want[ap] {
			cancel()
			delete(a.listeners, ap)
			closed = append(closed, ap)
		}
	}
	a.startPending()
	a.log.Info("configuration reloaded", "lan", prefixList(l.Networks()), "tftp_opened", addrList(opened), "tftp_closed", addrList(closed))
	return nil
}

func (a *App) close() {
	for _, p := range a.pending {
		p.conn.Close()
	}
	if a.origin != nil {
		a.origin.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
}

func addrList(aps []netip.AddrPort) string {
	s := make([]string, len(aps))
	for i, ap := range aps {
		s[i] = ap.String()
	}
	return strings.Join(s, " ")
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
