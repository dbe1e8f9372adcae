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
	"github.com/provgate/provgate/internal/certfile"
	"github.com/provgate/provgate/internal/config"
	"github.com/provgate/provgate/internal/gateway"
	"github.com/provgate/provgate/internal/httpsfront"
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
	https   *httpsfront.Server

	mu        sync.Mutex
	lan       *lan.LAN
	listeners map[endpoint]*listener // serving
	pending   []*listener            // bound by New or a reload, not yet served
	group     *errgroup.Group
	groupCtx  context.Context
}

// Protocols of listeners.
const (
	protoTFTP  = "tftp"
	protoHTTPS = "https"
)

type endpoint struct {
	proto string
	addr  netip.AddrPort
}

// listener is one bound socket and how to serve it.
type listener struct {
	endpoint
	serve  func(ctx context.Context) error
	close  func() error
	https  *httpsfront.Listener // for filter updates
	cancel context.CancelFunc
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
	a := &App{cfgPath: cfgPath, cfg: cfg, log: log, listeners: map[endpoint]*listener{}}
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
	if err := a.inv.LoadCached(ctx); err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			log.Warn("no usable cached inventory", "err", err)
		}
		// Nothing to decide from yet: wait for the cloud, within its timeout.
		syncCtx, cancel := context.WithTimeout(ctx, cfg.Cloud.Timeout)
		if err := a.inv.Sync(syncCtx); err != nil {
			log.Warn("inventory sync at start failed: every device is unknown until the cloud answers", "err", err)
		}
		cancel()
	}
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
	if cfg.HTTPSEnabled() {
		if a.https, err = newHTTPS(cfg, a, log); err != nil {
			return nil, err
		}
	}
	for ep := range endpoints(cfg, a.lan) {
		if err := a.bind(ctx, ep); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// newHTTPS builds the HTTPS front with the configured certificates, or a
// self-signed one kept in the cache folder.
func newHTTPS(cfg *config.Config, a *App, log *slog.Logger) (*httpsfront.Server, error) {
	pairs := cfg.HTTPS.Certificates
	if len(pairs) == 0 {
		var hosts []string
		for _, ad := range a.lan.Addresses() {
			hosts = append(hosts, ad.Addr.WithZone("").String())
		}
		cert, key, created, err := httpsfront.SelfSigned(filepath.Dir(cfg.Cache.Path), hosts)
		if err != nil {
			return nil, err
		}
		log.Warn("HTTPS uses a self-signed certificate: phones must trust it or skip verification; set https.certificates for an enterprise or public one",
			"cert", cert, "created", created)
		pairs = []config.CertPair{{Cert: cert, Key: key}}
	}
	var certs []*certfile.Reloader
	for i, p := range pairs {
		r, err := certfile.New(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("https.certificates[%d]: %w", i, err)
		}
		certs = append(certs, r)
	}
	return httpsfront.New(a.gw, a.policy, a.inv.Current, httpsfront.Config{
		PathPrefix: cfg.HTTPS.PathPrefix, Certificates: certs, NonceLifetime: cfg.HTTPS.NonceLifetime, Logger: log,
	})
}

// endpoints lists what cfg wants bound on the LAN's addresses.
func endpoints(cfg *config.Config, l *lan.LAN) map[endpoint]bool {
	out := map[endpoint]bool{}
	for _, ad := range l.Addresses() {
		if cfg.TFTPEnabled() {
			out[endpoint{protoTFTP, netip.AddrPortFrom(ad.Addr, uint16(cfg.TFTP.Port))}] = true
		}
		if cfg.HTTPSEnabled() {
			out[endpoint{protoHTTPS, netip.AddrPortFrom(ad.Addr, uint16(cfg.HTTPS.Port))}] = true
		}
	}
	return out
}

func discoverLAN(cfg *config.Config) (*lan.LAN, error) {
	return lan.Discover(lan.Config{Networks: cfg.LANNetworks(), Template: cfg.LAN.Template, LinkLocal: cfg.LAN.LinkLocal})
}

// bind opens ep's socket and queues it to be served.
func (a *App) bind(ctx context.Context, ep endpoint) error {
	l := &listener{}
	switch ep.proto {
	case protoTFTP:
		conn, err := tftpfront.Listen(ctx, ep.addr, int(a.cfg.TFTP.ReadBuffer))
		if err != nil {
			return err
		}
		l.addr = netip.MustParseAddrPort(conn.LocalAddr().String())
		l.serve = func(ctx context.Context) error { return a.tftp.Serve(ctx, conn, ShutdownGrace) }
		l.close = conn.Close
	case protoHTTPS:
		ln, err := httpsfront.Listen(ctx, ep.addr, a.lan.Networks())
		if err != nil {
			return err
		}
		if !ln.Filtered() {
			a.log.Warn("this kernel does not filter sockets: HTTPS connections from outside the LAN are closed once accepted, before TLS", "addr", ep.addr.String())
		}
		l.addr = netip.MustParseAddrPort(ln.Addr().String())
		l.serve = func(ctx context.Context) error { return a.https.Serve(ctx, ln, ShutdownGrace) }
		l.close, l.https = ln.Close, ln
	}
	l.proto = ep.proto
	a.pending = append(a.pending, l)
	return nil
}

func (a *App) addrs(proto string) []netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.AddrPort
	for ep := range a.listeners {
		if ep.proto == proto {
			out = append(out, ep.addr)
		}
	}
	for _, p := range a.pending {
		if p.proto == proto {
			out = append(out, p.addr)
		}
	}
	slices.SortFunc(out, func(x, y netip.AddrPort) int { return x.Compare(y) })
	return out
}

// TFTPAddrs lists the addresses TFTP is bound to.
func (a *App) TFTPAddrs() []netip.AddrPort { return a.addrs(protoTFTP) }

// HTTPSStats exposes the HTTPS counters.
func (a *App) HTTPSStats() httpsfront.Stats { return a.https.Stats() }

// HTTPSAddrs lists the addresses HTTPS is bound to.
func (a *App) HTTPSAddrs() []netip.AddrPort { return a.addrs(protoHTTPS) }

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
	a.log.Info("provgate ready", "tftp", addrList(a.TFTPAddrs()), "https", addrList(a.HTTPSAddrs()), "lan", prefixList(a.lan.Networks()), "cloud", a.cfg.Cloud.URL,
		"devices", len(a.inv.Current().Devices), "inventory_known", known, "inventory_age", age.Round(time.Second))
	g.Go(func() error { return a.audit.Run(gctx) })
	g.Go(func() error {
		// With a cached inventory the gateway is ready at once; bring it up
		// to date now rather than at the first refresh.
		if err := a.inv.Sync(gctx); err != nil && gctx.Err() == nil {
			age, _ := a.inv.Age(time.Now())
			a.log.Warn("inventory sync failed, deciding from the last good copy", "err", err, "inventory_age", age.Round(time.Second))
		}
		return a.inv.Run(gctx, a.cfg.Inventory.Refresh)
	})
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
	for _, l := range a.pending {
		lctx, cancel := context.WithCancel(a.groupCtx)
		l.cancel = cancel
		a.listeners[l.endpoint] = l
		a.group.Go(func() error {
			err := l.serve(lctx)
			l.close()
			if lctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s %s: %w", l.proto, l.addr, err)
		})
	}
	a.pending = nil
}

// Reload re-reads the config file and re-evaluates the LAN: the source
// filters (policy and HTTPS socket filters) follow the new networks at
// once, listeners are opened on new LAN addresses and closed on vanished
// ones. Cloud, cache and certificate settings take effect at the next
// restart (certificate files themselves are re-read when they change). A
// config that does not load changes nothing.
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
	want := endpoints(cfg, l)
	var opened, closed []string
	for ep := range want {
		if _, ok := a.listeners[ep]; !ok {
			if err := a.bind(ctx, ep); err != nil {
				for _, p := range a.pending {
					p.close()
				}
				a.pending = nil
				return err
			}
			opened = append(opened, ep.proto+" "+ep.addr.String())
		}
	}
	a.lan = l
	a.policy.SetLAN(l.Contains)
	for ep, ln := range a.listeners {
		switch {
		case !want[ep]:
			ln.cancel()
			delete(a.listeners, ep)
			closed = append(closed, ep.proto+" "+ep.addr.String())
		case ln.https != nil && ln.https.Filtered():
			if err := ln.https.SetLAN(l.Networks()); err != nil {
				a.log.Error("update HTTPS socket filter", "addr", ep.addr.String(), "err", err)
			}
		}
	}
	a.startPending()
	a.log.Info("configuration reloaded", "lan", prefixList(l.Networks()), "opened", strings.Join(opened, ", "), "closed", strings.Join(closed, ", "))
	return nil
}

func (a *App) close() {
	for _, p := range a.pending {
		p.close()
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
