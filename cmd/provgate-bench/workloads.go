package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/pki"
)

// peers are the servers provgate is compared with, in table order.
var peers = []string{"tftpd-hpa", "atftpd", "dnsmasq"}

// row is one line of the table.
type row struct {
	id, name string
	cells    map[string]string // by target name
	ratio    string
	goal     string
	met      string // "yes", "no", or ""
}

func (b *bench) runAll() ([]row, error) {
	var rows []row
	for _, w := range []func() (row, error){b.p1, b.p2, b.p3, b.p4, b.p5, b.p6, b.p7} {
		r, err := w()
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// measure runs cfg against every target that is up.
func (b *bench) measure(files []string, cfg loadgen.Config) (map[string]loadgen.Result, error) {
	out := map[string]loadgen.Result{}
	for _, t := range b.targets {
		if t.skip != "" {
			continue
		}
		res, err := b.load(t, files, cfg)
		if err != nil {
			return nil, err
		}
		out[t.name] = res
	}
	return out, nil
}

// bestPeer returns the best peer's value by better.
func bestPeer(res map[string]loadgen.Result, value func(loadgen.Result) float64, higher bool) (string, float64) {
	best, bv := "", 0.0
	for _, p := range peers {
		r, ok := res[p]
		if !ok {
			continue
		}
		v := value(r)
		if best == "" || higher && v > bv || !higher && v < bv {
			best, bv = p, v
		}
	}
	return best, bv
}

func cellsOf(res map[string]loadgen.Result, f func(loadgen.Result) string) map[string]string {
	c := map[string]string{}
	for name, r := range res {
		c[name] = f(r)
		if r.Failures > 0 {
			c[name] += fmt.Sprintf(" (%d failed)", r.Failures)
		}
	}
	return c
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func (b *bench) p1() (row, error) {
	b.logf("P1: small file")
	res, err := b.measure([]string{b.small}, loadgen.Config{Requests: b.sz.smallRequests, Concurrency: b.sz.smallConcurrency, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	rate := func(r loadgen.Result) float64 { return r.PerSecond() }
	best, bv := bestPeer(res, rate, true)
	r := row{id: "P1", name: fmt.Sprintf("2 KB file, %d requests, %d concurrent", b.sz.smallRequests, b.sz.smallConcurrency),
		cells: cellsOf(res, func(r loadgen.Result) string { return fmt.Sprintf("%.0f/s", r.PerSecond()) }), goal: "≥ 1.0× best peer"}
	if best != "" {
		x := rate(res["provgate"]) / bv
		r.ratio, r.met = fmt.Sprintf("%.2f× %s", x, best), yesNo(x >= 1 && res["provgate"].Failures == 0)
	}
	return r, nil
}

func (b *bench) p2() (row, error) {
	b.logf("P2: boot storm")
	res, err := b.measure([]string{b.small}, loadgen.Config{Requests: b.sz.stormClients, Storm: true, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	p99 := func(r loadgen.Result) float64 {
		if r.Transfers < r.Transfers+r.Failures { // failed clients count as the worst
			return float64(time.Hour)
		}
		return float64(r.P99)
	}
	r := row{id: "P2", name: fmt.Sprintf("boot storm, %d clients at once", b.sz.stormClients), goal: "100%, p99 ≤ 200 ms, 0 drops",
		cells: cellsOf(res, func(r loadgen.Result) string {
			return fmt.Sprintf("%.1f%%, p50 %s, p99 %s, %d drops", 100*float64(r.Transfers)/float64(b.sz.stormClients), ms(r.P50), ms(r.P99), r.RcvbufErrors)
		})}
	pg := res["provgate"]
	if best, bv := bestPeer(res, p99, false); best != "" {
		r.ratio = fmt.Sprintf("%.2f× %s (p99)", bv/p99(pg), best)
	}
	r.met = yesNo(pg.Failures == 0 && pg.P99 <= 200*time.Millisecond && pg.RcvbufErrors == 0)
	return r, nil
}

func (b *bench) p3() (row, error) {
	b.logf("P3: firmware")
	many, err := b.measure([]string{b.image}, loadgen.Config{Requests: b.sz.imageConcurrency, Concurrency: b.sz.imageConcurrency, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	b.rss20 = rss(b.pg.proc)
	one, err := b.measure([]string{b.image}, loadgen.Config{Requests: 1, Concurrency: 1, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	mbps := func(r loadgen.Result) float64 { return r.MBPerSecond() }
	cells := map[string]string{}
	for name := range many {
		cells[name] = fmt.Sprintf("%.0f MB/s (single %.0f MB/s)", many[name].MBPerSecond(), one[name].MBPerSecond())
		if f := many[name].Failures + one[name].Failures; f > 0 {
			cells[name] += fmt.Sprintf(" (%d failed)", f)
		}
	}
	r := row{id: "P3", name: fmt.Sprintf("%d MB image × %d concurrent, blksize 1468", b.sz.imageMB, b.sz.imageConcurrency), cells: cells, goal: "≥ 1.0× best peer"}
	if best, bv := bestPeer(many, mbps, true); best != "" {
		x := mbps(many["provgate"]) / bv
		r.ratio, r.met = fmt.Sprintf("%.2f× %s", x, best), yesNo(x >= 1 && many["provgate"].Failures == 0)
	}
	return r, nil
}

func (b *bench) p4() (row, error) {
	b.logf("P4: memory with a %d MB image", b.sz.bigImageMB)
	res, err := b.load(b.pg, []string{b.big}, loadgen.Config{Requests: b.sz.bigConcurrency, Concurrency: b.sz.bigConcurrency, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	big := rss(b.pg.proc)
	r := row{id: "P4", name: fmt.Sprintf("provgate peak RSS: %d MB image ×%d, then %d MB ×%d", b.sz.imageMB, b.sz.imageConcurrency, b.sz.bigImageMB, b.sz.bigConcurrency),
		cells: map[string]string{"provgate": fmt.Sprintf("%.1f MiB, then %.1f MiB", float64(b.rss20)/(1<<20), float64(big)/(1<<20))},
		goal:  "≤ 64 MiB, flat in image size"}
	if res.Failures > 0 {
		r.cells["provgate"] += fmt.Sprintf(" (%d failed)", res.Failures)
	}
	r.met = yesNo(big <= 64<<20 && float64(big) <= 1.25*float64(b.rss20) && res.Failures == 0)
	return r, nil
}

// p5 is the cold storm: an empty cache, a cloud 20 ms away, and every
// device asking for its own file and the common one at once.
func (b *bench) p5() (row, error) {
	b.logf("P5: cold storm")
	if err := b.writeExpected(); err != nil {
		return row{}, err
	}
	slow, err := b.startOrigin("origin-slow", 20*time.Millisecond)
	if err != nil {
		return row{}, err
	}
	cold, err := b.startProvgate("provgate-cold", slow, "")
	if err != nil {
		return row{}, err
	}
	before := countLines(filepath.Join(b.work, "origin-slow.log"), "path=/v1/files/")
	files := []string{b.small}
	for i := range b.sz.coldDevices {
		files = append(files, coldMAC(i)+".cfg")
	}
	res, err := b.load(cold, files, loadgen.Config{Requests: 2 * len(files), Storm: true, BlockSize: 1468})
	if err != nil {
		return row{}, err
	}
	fetches := countLines(filepath.Join(b.work, "origin-slow.log"), "path=/v1/files/") - before
	r := row{id: "P5", name: fmt.Sprintf("cold storm: %d device files + 1 common, each asked twice at once, cloud +20 ms", b.sz.coldDevices),
		cells: map[string]string{"provgate": fmt.Sprintf("%d cloud fetches for %d files, all served in %s, %d failed", fetches, len(files), ms(res.Elapsed), res.Failures)},
		goal:  "fetches = distinct files, ≤ 2 s"}
	r.met = yesNo(fetches == len(files) && res.Elapsed <= 2*time.Second && res.Failures == 0)
	stop(cold.proc)
	return r, nil
}

// writeExpected asks the (fast) cloud for every cold device's rendered
// config, so the load generator can check each byte the gateway serves.
func (b *bench) writeExpected() error {
	dir := filepath.Join(b.work, "expected")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pkiDir := filepath.Join(b.work, "pki")
	pair, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, pki.SiteCert("demo-site")), filepath.Join(pkiDir, pki.SiteKey("demo-site")))
	if err != nil {
		return err
	}
	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, pki.CACert))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	for i := range b.sz.coldDevices {
		mac := coldMAC(i)
		resp, err := c.Get(fmt.Sprintf("https://%s/v1/files/%s.cfg?mac=%s&tenant=acme", b.cloud, mac, mac))
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("expected config of %s: %d %v", mac, resp.StatusCode, err)
		}
		if err := os.WriteFile(filepath.Join(dir, mac+".cfg"), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// p6 compares HTTPS small-file rates with nginx serving the same file with
// the same certificate.
func (b *bench) p6() (row, error) {
	b.logf("P6: HTTPS")
	r := row{id: "P6", name: fmt.Sprintf("HTTPS 2 KB file, %d requests, %d keep-alive connections", b.sz.httpsRequests, b.sz.httpsConcurrency), cells: map[string]string{}, goal: "≥ 0.8× nginx"}
	cfg := loadgen.HTTPConfig{Want: b.files[b.small], Requests: b.sz.httpsRequests, Concurrency: b.sz.httpsConcurrency}
	cfg.URL = fmt.Sprintf("https://127.0.0.1:%d/%s", b.pgHTTPS, b.small)
	pg, err := loadgen.RunHTTP(b.ctx, cfg)
	if err != nil {
		return r, err
	}
	r.cells["provgate"] = fmt.Sprintf("%.0f/s, p99 %s", pg.PerSecond(), ms(pg.P99))
	if pg.Failures > 0 {
		r.cells["provgate"] += fmt.Sprintf(" (%d failed: %s)", pg.Failures, pg.FirstError)
	}
	port, err := b.startNginx()
	if err != nil {
		r.cells["nginx"] = "skipped: " + err.Error()
		return r, nil
	}
	cfg.URL = fmt.Sprintf("https://127.0.0.1:%d/%s", port, b.small)
	ng, err := loadgen.RunHTTP(b.ctx, cfg)
	if err != nil {
		return r, err
	}
	r.cells["nginx"] = fmt.Sprintf("%.0f/s, p99 %s", ng.PerSecond(), ms(ng.P99))
	x := pg.PerSecond() / ng.PerSecond()
	r.ratio, r.met = fmt.Sprintf("%.2f× nginx", x), yesNo(x >= 0.8 && pg.Failures == 0)
	return r, nil
}

func (b *bench) startNginx() (int, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		return 0, errors.New("nginx not installed (scripts/bench-peers.sh installs it)")
	}
	addr, err := freeAddr("tcp")
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(b.work, "nginx")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	pkiDir := filepath.Join(b.work, "pki")
	workers := runtime.NumCPU()
	conf := fmt.Sprintf(`daemon off;
worker_processes %d;
error_log %s/logs/error.log;
pid %s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen %s ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    root %s;
  }
}
`, workers, dir, dir, addr, filepath.Join(pkiDir, pki.ServerCert), filepath.Join(pkiDir, pki.ServerKey), b.root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return 0, err
	}
	if _, err := b.start(filepath.Join(dir, "stderr.log"), "", path, "-p", dir, "-c", filepath.Join(dir, "nginx.conf")); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr.String()); err == nil {
			c.Close()
			return int(addr.Port()), nil
		}
	}
	return 0, fmt.Errorf("nginx did not start (see %s)", dir)
}

// p7 times a start with a cache of many entries: from exec to the first
// answered request.
func (b *bench) p7() (row, error) {
	b.logf("P7: start with %d cached entries", b.sz.cachedEntries)
	dir := filepath.Join(b.work, "provgate-p7")
	if err := prefill(dir, b.sz.cachedEntries); err != nil {
		return row{}, err
	}
	var times []time.Duration
	for i := range 5 {
		d, err := b.startupTime(fmt.Sprintf("provgate-p7-%d", i), dir)
		if err != nil {
			return row{}, err
		}
		times = append(times, d)
	}
	m := median(times)
	return row{id: "P7", name: fmt.Sprintf("exec to ready (every listener bound), %d cached entries (median of 5)", b.sz.cachedEntries),
		cells: map[string]string{"provgate": ms(m)}, goal: "≤ 100 ms", met: yesNo(m <= 100*time.Millisecond)}, nil
}

func (b *bench) print(w io.Writer, rows []row) {
	cols := append([]string{"provgate"}, peers...)
	cols = append(cols, "pin/tftp", "nginx")
	fmt.Fprintf(w, "provgate-bench, %s, %d CPUs, %s\n\n", time.Now().UTC().Format(time.DateTime), runtime.NumCPU(), kernel())
	fmt.Fprintf(w, "| | workload | %s | ratio | goal | met |\n|---|---|%s---|---|---|\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, r := range rows {
		var cells []string
		for _, c := range cols {
			v := r.cells[c]
			if v == "" {
				v = "—"
			}
			cells = append(cells, v)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.id, r.name, strings.Join(cells, " | "), r.ratio, r.goal, r.met)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range b.targets {
		if t.skip != "" {
			fmt.Fprintf(tw, "%s\tnot measured: %s\n", t.name, t.skip)
		}
	}
	tw.Flush()
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown kernel"
	}
	return "Linux " + string(bytes.TrimSpace(b))
}

// serveBaseline serves the files of a folder from memory with a bare
// pin/tftp server: the floor of what any server built on it can do.
func serveBaseline(ctx context.Context, args []string) error {
	fs := flagSet("serve-baseline")
	dir := fs.String("dir", "", "folder whose files are served")
	listen := fs.String("listen", "127.0.0.1:0", "UDP address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := map[string][]byte{}
	entries, err := os.ReadDir(*dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(*dir, e.Name())); err == nil {
			files[e.Name()] = b
		}
	}
	srv := tftp.NewServer(func(name string, rf io.ReaderFrom) error {
		b, ok := files[strings.TrimPrefix(name, "/")]
		if !ok {
			return errors.New("file not found")
		}
		rf.(tftp.OutgoingTransfer).SetSize(int64(len(b)))
		_, err := rf.ReadFrom(bytes.NewReader(b))
		return err
	}, nil)
	srv.SetBlockSize(1468)
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening", conn.LocalAddr())
	go func() { <-ctx.Done(); srv.Shutdown() }()
	return srv.Serve(conn)
}
