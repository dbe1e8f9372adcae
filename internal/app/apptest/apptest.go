// Package apptest runs a whole gateway for tests: a real reference cloud
// over mutual TLS on loopback, a real SQLite cache with a fresh key, and
// provgate's TFTP front bound to 127.0.0.1 (loopback counts as LAN here).
package apptest

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/app"
	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/config"
	"github.com/provgate/provgate/internal/keyring"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil"
)

// Options tune a test gateway.
type Options struct {
	Cloud     refcloudtest.Options
	UseCloud  *refcloudtest.Cloud // share a cloud instead of starting one
	ExtraYAML string              // appended to the generated config (top-level keys)
	TFTPYAML  string              // appended inside the tftp: section
	LAN       []string            // lan.networks; default 127.0.0.0/8
	Site      string              // client certificate to use; default refcloudtest.Site
	TFTPPort  int                 // default 0: any free port
	HTTPSPort int                 // default 0: any free port
	// HTTPSCerts are certificate and key files for https.certificates;
	// default none: a self-signed certificate.
	HTTPSCerts [][2]string
}

// Env is a running gateway and its cloud.
type Env struct {
	Cloud      *refcloudtest.Cloud
	App        *app.App
	Config     *config.Config
	ConfigPath string
	Dir        string
	Logs       *testutil.SyncBuffer
	TFTP       netip.AddrPort // the first TFTP address
	HTTPS      netip.AddrPort // the first HTTPS address

	cancel context.CancelFunc
	done   chan error
	Reload chan struct{}
}

// Start brings up cloud and gateway; both stop when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	e := &Env{Cloud: opts.UseCloud, Dir: t.TempDir(), Logs: &testutil.SyncBuffer{}, Reload: make(chan struct{}, 1)}
	if e.Cloud == nil {
		e.Cloud = refcloudtest.Start(t, opts.Cloud)
	}
	if opts.Site == "" {
		opts.Site = refcloudtest.Site
	}
	if opts.LAN == nil {
		opts.LAN = []string{"127.0.0.0/8"}
	}
	keyPath := filepath.Join(e.Dir, "cache.key")
	if _, err := keyring.WriteKeyFile(keyPath); err != nil {
		t.Fatal(err)
	}
	cert, key := e.Cloud.CertFiles(opts.Site)
	yaml := fmt.Sprintf(`cloud:
  url: %s
  ca: %s
  cert: %s
  key: %s
  timeout: 5s
  retries: 1
lan:
  networks: [%s]
tftp:
  port: %d
  timeout: 1s
%shttps:
  port: %d
  certificates: [%s]
audit:
  path: audit.db
cache:
  path: cache.db
  key_file: cache.key
%s`, e.Cloud.URL, e.Cloud.CAFile(), cert, key, strings.Join(opts.LAN, ", "), max(opts.TFTPPort, 1), opts.TFTPYAML, max(opts.HTTPSPort, 1), certList(opts.HTTPSCerts), opts.ExtraYAML)
	e.ConfigPath = filepath.Join(e.Dir, "provgate.yaml")
	if err := os.WriteFile(e.ConfigPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(e.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TFTP.Port = opts.TFTPPort // 0: any free port, which the file format does not allow
	cfg.HTTPS.Port = opts.HTTPSPort
	e.Config = cfg
	e.start(t)
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
	})
	return e
}

func (e *Env) start(t testing.TB) {
	t.Helper()
	log := app.NewLogger(config.Log{Level: "debug", Format: "text"}, e.Logs)
	var err error
	if e.App, err = app.New(context.Background(), e.Config, e.ConfigPath, log); err != nil {
		t.Fatal(err)
	}
	if addrs := e.App.TFTPAddrs(); len(addrs) > 0 {
		e.TFTP = addrs[0]
	}
	if addrs := e.App.HTTPSAddrs(); len(addrs) > 0 {
		e.HTTPS = addrs[0]
	}
	var ctx context.Context
	ctx, e.cancel = context.WithCancel(context.Background())
	e.done = make(chan error, 1)
	go func() { e.done <- e.App.Serve(ctx, e.Reload) }()
}

// Restart stops the gateway and starts it again on the same config,
// cache and key, as after a reboot. The TFTP port stays the same.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.Config.TFTP.Port = int(e.TFTP.Port())
	e.Config.HTTPS.Port = int(e.HTTPS.Port())
	e.start(t)
}

// FetchAs reads name over TFTP from the source address src (a loopback
// address), as a phone at that address would.
func (e *Env) FetchAs(src, name string) ([]byte, error) {
	return fetch(e.TFTP.String(), src, name, 0)
}

func certList(pairs [][2]string) string {
	var s []string
	for _, p := range pairs {
		s = append(s, fmt.Sprintf("{cert: %q, key: %q}", p[0], p[1]))
	}
	return strings.Join(s, ", ")
}

// Stop shuts the gateway down and returns Serve's error. Idempotent.
func (e *Env) Stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	return <-e.done
}

// Fetch reads name over TFTP with pin/tftp's client; blksize 0 asks for none.
func (e *Env) Fetch(name string, blksize int) ([]byte, error) {
	return fetch(e.TFTP.String(), "", name, blksize)
}

func fetch(addr, src, name string, blksize int) ([]byte, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, err
	}
	if src != "" {
		if err := c.SetLocalAddr(src); err != nil {
			return nil, err
		}
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(3)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	if n, ok := wt.(tftp.IncomingTransfer).Size(); ok && n != int64(b.Len()) {
		return nil, fmt.Errorf("tsize %d, got %d bytes", n, b.Len())
	}
	return []byte(b.String()), nil
}

// FromCloud fetches name with identity query straight from the cloud: the
// bytes the gateway must serve.
func (e *Env) FromCloud(t testing.TB, pathAndQuery string) []byte {
	t.Helper()
	resp, err := e.Cloud.Client(t, refcloudtest.Site).Get(e.Cloud.URL + "/v1/files/" + pathAndQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("cloud %s: %d %v", pathAndQuery, resp.StatusCode, err)
	}
	return b
}

// AuditRows flushes the audit log and returns the rows matching f.
func (e *Env) AuditRows(t testing.TB, f audit.Filter) []audit.Record {
	t.Helper()
	if err := e.App.Audit().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, skipped, err := e.App.Audit().Query(context.Background(), f)
	if err != nil || skipped != 0 {
		t.Fatalf("audit query: %v (%d skipped)", err, skipped)
	}
	return rows
}

// WaitLog waits until the gateway's log contains s. A transfer's summary
// line is written after the client saw its last block, so tests wait for it.
func (e *Env) WaitLog(t testing.TB, s string) {
	t.Helper()
	testutil.Eventually(t, func() bool { return strings.Contains(e.Logs.String(), s) })
}
