package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/app"
	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/buildinfo"
	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/cli"
	"github.com/provgate/provgate/internal/config"
	"github.com/provgate/provgate/internal/device"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/keyring"
	"github.com/provgate/provgate/internal/lan"
	"github.com/provgate/provgate/internal/macaddr"
	"github.com/provgate/provgate/internal/origin"
)

const usage = `usage:
  provgate serve --config FILE          run the gateway
  provgate check-config --config FILE   validate a configuration and what it points to
  provgate keygen --out FILE            create a cache key (32 random bytes, mode 0600)
  provgate fetch [--blksize N] [--out FILE] tftp://HOST:PORT/NAME
                                        fetch a file as a legacy phone would
  provgate audit [--config FILE] [--mac MAC] [--source IP] [--since DUR] [--limit N] [--json]
                                        print authorization decisions, oldest first
  provgate inventory [--config FILE] [--devices]
                                        the site inventory the gateway decides from, and its age
  provgate identify [--file NAME] [--user-agent UA]
                                        show how a request would be identified (one JSON line)
  provgate version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "check-config":
		return checkConfig(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "fetch":
		return fetch(args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "identify":
		return identify(args[1:], stdout, stderr)
	case "inventory":
		return inventoryCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "provgate", buildinfo.String())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadConfig parses a command's flags, of which --config is one, and
// loads that file; more defines the others.
func loadConfig(name string, args []string, stderr io.Writer, more ...func(*flag.FlagSet)) (*config.Config, string, error) {
	fs := cli.NewFlags(name, stderr)
	path := fs.String("config", "/etc/provgate/provgate.yaml", "configuration file")
	for _, f := range more {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(*path)
	return cfg, *path, err
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, path, err := loadConfig("serve", args, stderr)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg.Log, stderr)
	a, err := app.New(ctx, cfg, path, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return a.Serve(ctx, reload)
}

func checkConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, path, err := loadConfig("check-config", args, stderr)
	if err != nil {
		return err
	}
	if _, err := keyring.LoadKeyFile(cfg.Cache.KeyFile); err != nil {
		return err
	}
	c, err := origin.New(origin.Config{URL: cfg.Cloud.URL, CAFile: cfg.Cloud.CA, CertFile: cfg.Cloud.Cert, KeyFile: cfg.Cloud.Key})
	if err != nil {
		return err
	}
	c.Close()
	l, err := lan.Discover(lan.Config{Networks: cfg.LANNetworks(), Template: cfg.LAN.Template, LinkLocal: cfg.LAN.LinkLocal})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n  cloud: %s\n  cache: %s (key %s)\n  LAN networks:", path, cfg.Cloud.URL, cfg.Cache.Path, cfg.Cache.KeyFile)
	for _, p := range l.Networks() {
		fmt.Fprintf(stdout, " %s", p)
	}
	for _, f := range []struct {
		name string
		on   bool
		port int
	}{{"TFTP", cfg.TFTPEnabled(), cfg.TFTP.Port}, {"HTTPS", cfg.HTTPSEnabled(), cfg.HTTPS.Port}} {
		if !f.on {
			continue
		}
		fmt.Fprintf(stdout, "\n  %s would listen on:", f.name)
		for _, a := range l.Addresses() {
			fmt.Fprintf(stdout, " %s", net.JoinHostPort(a.Addr.String(), fmt.Sprint(f.port)))
		}
	}
	fmt.Fprintln(stdout)
	return nil
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("keygen", stderr)
	out := fs.String("out", "", "key file to create (never overwritten)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("keygen: --out is required")
	}
	k, err := keyring.WriteKeyFile(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (key id %s); keep it outside backups of the cache database\n", *out, k.ID)
	return nil
}

func fetch(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("fetch", stderr)
	blksize := fs.Int("blksize", 1468, "block size to ask for (512 asks for none)")
	out := fs.String("out", "", "write here instead of standard output")
	timeout := fs.Duration("timeout", 2*time.Second, "retransmit timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("fetch: want one tftp://HOST:PORT/NAME")
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || u.Scheme != "tftp" || u.Host == "" {
		return fmt.Errorf("fetch: %q is not tftp://HOST[:PORT]/NAME", fs.Arg(0))
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "69")
	}
	c, err := tftp.NewClient(host)
	if err != nil {
		return err
	}
	c.SetTimeout(*timeout)
	if *blksize > 512 {
		c.SetBlockSize(*blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(strings.TrimPrefix(u.Path, "/"), "octet")
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if *out == "" {
		_, err = wt.WriteTo(stdout)
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if _, err := wt.WriteTo(f); err != nil {
		f.Close()
		os.Remove(*out)
		return fmt.Errorf("fetch: %w", err)
	}
	return f.Close()
}

func identify(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("identify", stderr)
	file := fs.String("file", "", "requested file name")
	ua := fs.String("user-agent", "", "HTTP User-Agent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" && *ua == "" {
		return fmt.Errorf("identify: give --file, --user-agent or both")
	}
	return json.NewEncoder(stdout).Encode(device.Identify(*file, *ua))
}

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		f       audit.Filter
		since   time.Duration
		asJSON  bool
		macFlag string
	)
	cfg, _, err := loadConfig("audit", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&macFlag, "mac", "", "only this device (any MAC notation)")
		fs.StringVar(&f.Source, "source", "", "only this source address")
		fs.DurationVar(&since, "since", 24*time.Hour, "only this far back")
		fs.IntVar(&f.Limit, "limit", 1000, "at most this many rows (the newest)")
		fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
	})
	if err != nil {
		return err
	}
	if macFlag != "" {
		if f.MAC, err = macaddr.Parse(macFlag); err != nil {
			return fmt.Errorf("audit: --mac: %w", err)
		}
	}
	if f.Source != "" {
		ip, err := netip.ParseAddr(f.Source)
		if err != nil {
			return fmt.Errorf("audit: --source: %q is not an IP address", f.Source)
		}
		f.Source = ip.Unmap().String()
	}
	f.Since = time.Now().Add(-since)
	key, err := keyring.LoadKeyFile(cfg.Cache.KeyFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Audit.Path); err != nil {
		return fmt.Errorf("audit: %w (has provgate run yet?)", err)
	}
	log, err := audit.Open(cfg.Audit.Path, key, audit.Options{})
	if err != nil {
		return err
	}
	defer log.Close()
	rows, skipped, err := log.Query(ctx, f)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, r := range rows {
		if asJSON {
			enc.Encode(r)
			continue
		}
		fmt.Fprintf(stdout, "%s %-5s %-5s %-15s mac=%s tenant=%s reason=%s file=%q\n", r.Time.Format(time.RFC3339), r.Decision, r.Transport, r.Source, orDash(r.MAC), orDash(r.Tenant), r.Reason, r.File)
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "audit: %d rows failed to open (another key, or tampered)\n", skipped)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inventoryCmd prints the inventory kept in the cache (what a gateway
// decides from when the cloud is away) and how long ago the cloud last
// vouched for it. It opens the cache read-only, next to a running gateway.
func inventoryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var devices bool
	cfg, _, err := loadConfig("inventory", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&devices, "devices", false, "list every device")
	})
	if err != nil {
		return err
	}
	key, err := keyring.LoadKeyFile(cfg.Cache.KeyFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Cache.Path); err != nil {
		return fmt.Errorf("inventory: %w (has provgate run yet?)", err)
	}
	store, err := cache.Open(cfg.Cache.Path, key, cache.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer store.Close()
	s := inventory.NewSyncer(nil, store, nil)
	if err := s.LoadCached(ctx); err != nil {
		return fmt.Errorf("inventory: no inventory in the cache: %w", err)
	}
	ix := s.Current()
	age, _ := s.Age(time.Now())
	fmt.Fprintf(stdout, "site %s: %d tenants, %d devices; the cloud last vouched for it %s ago\n", ix.Site, len(ix.Tenants), len(ix.Devices), age.Round(time.Second))
	for _, id := range slices.Sorted(maps.Keys(ix.Tenants)) {
		t := ix.Tenants[id]
		var opts []string
		if t.Options.AuthRequiredInAllowlist {
			opts = append(opts, "credentials required in the allow-list")
		}
		if t.Options.AuthAllowedOutsideAllowlist {
			opts = append(opts, "credentials accepted outside the allow-list")
		}
		fmt.Fprintf(stdout, "tenant %s: allow %s; auth %s; %d credentials%s\n", id, strings.Join(t.AllowCIDRs, " "),
			strings.Join(t.Options.AuthSchemes, ","), len(t.Credentials), prefixed("; ", strings.Join(opts, "; ")))
	}
	if devices {
		for _, mac := range slices.Sorted(maps.Keys(ix.Devices)) {
			d := ix.Devices[mac]
			fmt.Fprintf(stdout, "device %s %s %s tenant=%s\n", macaddr.Colons(mac), d.Brand, d.Model, d.Tenant)
		}
	}
	return nil
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
