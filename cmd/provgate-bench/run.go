package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/cli"
	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/pki"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve-baseline" {
		return serveBaseline(ctx, args[1:])
	}
	fs := cli.NewFlags("provgate-bench", stderr)
	bin := fs.String("bin", "bin", "folder with provgate and provgate-origin")
	requests := fs.Int("requests", 5000, "small-file requests")
	concurrency := fs.Int("concurrency", 50, "small-file requests in flight")
	imageMB := fs.Int("image-mb", 20, "firmware image size in MB")
	keep := fs.Bool("keep", false, "keep the work folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "provgate-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	small := bytes.Repeat([]byte("account.1.label = bench\n"), 2048/24+1)[:2048]
	image := make([]byte, *imageMB<<20)
	rand.Read(image)
	files := map[string][]byte{"bench-2k.cfg": small, "bench-image.bin": image}

	l, err := newLab(ctx, work, *bin, files, stderr)
	if err != nil {
		return err
	}
	defer l.stop()

	fmt.Fprintf(stdout, "provgate-bench %s: %d CPUs, work folder %s\n\n", time.Now().Format(time.DateOnly), numCPU(), work)
	rows := []row{}
	for _, w := range []struct {
		name string
		cfg  loadgen.Config
		mbps bool
	}{
		{fmt.Sprintf("P1 2 KB file, %d requests, %d concurrent", *requests, *concurrency),
			loadgen.Config{Files: map[string][]byte{"bench-2k.cfg": small}, Requests: *requests, Concurrency: *concurrency, BlockSize: 1468}, false},
		{fmt.Sprintf("%d MB image, one transfer, blksize 1468", *imageMB),
			loadgen.Config{Files: map[string][]byte{"bench-image.bin": image}, Requests: 1, Concurrency: 1, BlockSize: 1468}, true},
	} {
		r := row{name: w.name, mbps: w.mbps}
		for i, target := range []netip.AddrPort{l.provgate, l.baseline} {
			cfg := w.cfg
			cfg.Target = target
			res, err := loadgen.Run(ctx, cfg)
			if err != nil {
				return err
			}
			r.res[i] = res
		}
		rows = append(rows, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tprovgate\tpin/tftp from memory\tratio\tprovgate p99\tfailures\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f×\t%s\t%d / %d\t\n", r.name, r.value(0), r.value(1), r.ratio(),
			r.res[0].P99.Round(time.Microsecond), r.res[0].Failures, r.res[1].Failures)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nprovgate: warm encrypted cache, reference cloud behind it over mutual TLS; baseline: bare pin/tftp, same bytes, no checks.")
	for _, r := range rows {
		for i, who := range []string{"provgate", "baseline"} {
			if r.res[i].FirstError != "" {
				fmt.Fprintf(stdout, "%s, %s: first error: %s\n", r.name, who, r.res[i].FirstError)
			}
		}
	}
	return nil
}

type row struct {
	name string
	mbps bool
	res  [2]loadgen.Result
}

func (r row) metric(i int) float64 {
	if r.mbps {
		return r.res[i].MBPerSecond()
	}
	return r.res[i].PerSecond()
}

func (r row) value(i int) string {
	if r.mbps {
		return fmt.Sprintf("%.0f MB/s", r.metric(i))
	}
	return fmt.Sprintf("%.0f/s", r.metric(i))
}

func (r row) ratio() float64 { return r.metric(0) / r.metric(1) }

// lab is the processes under test: cloud, provgate, baseline.
type lab struct {
	procs              []*exec.Cmd
	provgate, baseline netip.AddrPort
}

func (l *lab) stop() {
	for _, p := range l.procs {
		p.Process.Signal(os.Interrupt)
		p.Wait()
	}
}

func newLab(ctx context.Context, work, bin string, files map[string][]byte, stderr io.Writer) (*lab, error) {
	l := &lab{}
	data := filepath.Join(work, "data")
	if err := os.CopyFS(data, os.DirFS("testdata/origin-sample")); err != nil {
		return nil, fmt.Errorf("copy sample data (run from the repository root): %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(data, "files", "common", name), b, 0o644); err != nil {
			return nil, err
		}
	}
	pkiDir := filepath.Join(work, "pki")
	if err := pki.Init(pkiDir, "demo-site", nil, time.Now()); err != nil {
		return nil, err
	}
	cloudAddr, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	tftpPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	basePort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	if err := l.start(ctx, filepath.Join(work, "origin.log"), "listening", filepath.Join(bin, "provgate-origin"),
		"serve", "--data", data, "--tls-dir", pkiDir, "--listen", cloudAddr.String(), "--max-age", "1h"); err != nil {
		return nil, err
	}
	if out, err := exec.Command(filepath.Join(bin, "provgate"), "keygen", "--out", filepath.Join(work, "cache.key")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keygen: %v %s", err, out)
	}
	cfg := fmt.Sprintf(`cloud: {url: "https://%s", ca: pki/ca.crt, cert: pki/site-demo-site.crt, key: pki/site-demo-site.key}
lan: {networks: [127.0.0.0/8]}
tftp: {port: %d}
cache: {path: cache.db, key_file: cache.key}
log: {level: warn}
`, cloudAddr, tftpPort.Port())
	cfgPath := filepath.Join(work, "provgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := l.start(ctx, filepath.Join(work, "gateway.log"), "", filepath.Join(bin, "provgate"), "serve", "--config", cfgPath); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := l.start(ctx, filepath.Join(work, "baseline.log"), "listening", self, "serve-baseline", "--dir", filepath.Join(data, "files", "common"), "--listen", basePort.String()); err != nil {
		return nil, err
	}
	l.provgate = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tftpPort.Port())
	l.baseline = basePort
	// Warm provgate's cache and wait until both answer.
	for name, b := range files {
		for _, target := range []netip.AddrPort{l.provgate, l.baseline} {
			if err := waitServed(ctx, target, name, b); err != nil {
				return nil, fmt.Errorf("warm-up of %s at %s: %w (logs in %s)", name, target, err, work)
			}
		}
	}
	return l, nil
}

// start runs a process with its stderr in logPath; when ready is set, it
// waits until that word appears in the log.
func (l *lab) start(ctx context.Context, logPath, ready, name string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return err
	}
	l.procs = append(l.procs, cmd)
	if ready == "" {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(ready)) {
			return nil
		}
	}
	return fmt.Errorf("%s did not start; see %s", filepath.Base(name), logPath)
}

func waitServed(ctx context.Context, target netip.AddrPort, name string, b []byte) error {
	var last error
	for range 50 {
		res, err := loadgen.Run(ctx, loadgen.Config{Target: target, Files: map[string][]byte{name: b}, Requests: 1, Concurrency: 1, BlockSize: 1468, Retries: 1})
		if err != nil {
			return err
		}
		if res.Transfers == 1 {
			return nil
		}
		last = errors.New(res.FirstError)
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func freePort(network string) (netip.AddrPort, error) {
	if network == "tcp" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return netip.AddrPort{}, err
		}
		defer ln.Close()
		return netip.MustParseAddrPort(ln.Addr().String()), nil
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer pc.Close()
	return netip.MustParseAddrPort(pc.LocalAddr().String()), nil
}

// serveBaseline serves the files of a folder from memory with a bare
// pin/tftp server: the floor of what any server built on it can do.
func serveBaseline(ctx context.Context, args []string) error {
	fs := cli.NewFlags("serve-baseline", os.Stderr)
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

func numCPU() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "processor") {
			n++
		}
	}
	return n
}
