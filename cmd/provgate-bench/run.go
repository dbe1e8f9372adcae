package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/provgate/provgate/internal/cli"
	"github.com/provgate/provgate/internal/loadgen"
)

const usage = `usage:
  provgate-bench [--bin DIR] [--peers DIR] [--quick] [--keep]   run every workload, print the table
  provgate-bench loadgen --target ADDR --file NAME=PATH... [--requests N] [--concurrency N] [--storm] [--blksize N]
  provgate-bench serve-baseline --dir DIR --listen ADDR             bare pin/tftp from memory
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve-baseline":
			return serveBaseline(ctx, args[1:])
		case "loadgen":
			return loadgenCmd(ctx, args[1:], stdout, stderr)
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	fs := cli.NewFlags("provgate-bench", stderr)
	bin := fs.String("bin", "bin", "folder with provgate and provgate-origin")
	peersDir := fs.String("peers", ".bench/peers", "folder where scripts/bench-peers.sh put tftpd-hpa and atftpd")
	quick := fs.Bool("quick", false, "small sizes and counts: checks the harness, not the numbers")
	keep := fs.Bool("keep", false, "keep the work folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sz := fullSizes
	if *quick {
		sz = quickSizes
	}
	work, err := os.MkdirTemp("", "provgate-bench-")
	if err != nil {
		return err
	}
	os.Chmod(work, 0o755) // peers drop privileges and must read the files
	if !*keep {
		defer os.RemoveAll(work)
	}
	b := &bench{ctx: ctx, work: work, bin: *bin, peersDir: *peersDir, sz: sz, log: stderr}
	defer b.stopAll()
	if err := b.prepare(); err != nil {
		return err
	}
	rows, err := b.runAll()
	if err != nil {
		return err
	}
	b.print(stdout, rows)
	return nil
}

// sizes are the workload parameters.
type sizes struct {
	smallRequests, smallConcurrency int
	stormClients                    int
	imageMB, imageConcurrency       int
	bigImageMB, bigConcurrency      int
	coldDevices                     int
	httpsRequests, httpsConcurrency int
	cachedEntries                   int
}

var fullSizes = sizes{
	smallRequests: 5000, smallConcurrency: 50, stormClients: 1000,
	imageMB: 20, imageConcurrency: 20, bigImageMB: 100, bigConcurrency: 4,
	coldDevices: 1000, httpsRequests: 20000, httpsConcurrency: 50, cachedEntries: 10000,
}

var quickSizes = sizes{
	smallRequests: 200, smallConcurrency: 10, stormClients: 50,
	imageMB: 2, imageConcurrency: 3, bigImageMB: 4, bigConcurrency: 2,
	coldDevices: 30, httpsRequests: 200, httpsConcurrency: 5, cachedEntries: 200,
}

// loadgenCmd runs one TFTP workload and prints the result as JSON. The
// bench runs it as a child process, inside dnsmasq's network namespace
// where needed.
func loadgenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("loadgen", stderr)
	var cfg loadgen.Config
	target := fs.String("target", "", "host:port (loopback)")
	var files cli.StringList
	fs.Var(&files, "file", "NAME=PATH: request NAME, expect the bytes of PATH (repeatable)")
	fs.IntVar(&cfg.Requests, "requests", 1, "transfers")
	fs.IntVar(&cfg.Concurrency, "concurrency", 1, "in flight")
	fs.BoolVar(&cfg.Storm, "storm", false, "release every request at once")
	fs.IntVar(&cfg.BlockSize, "blksize", 1468, "blksize to ask for")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", 3*time.Minute, "cut-off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Target, err = parseAddrPort(*target); err != nil {
		return err
	}
	cfg.Files = map[string][]byte{}
	for _, f := range files {
		name, path, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("--file %q: want NAME=PATH", f)
		}
		if cfg.Files[name], err = os.ReadFile(path); err != nil {
			return err
		}
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

func randomFile(path string, size int) ([]byte, error) {
	b := make([]byte, size)
	rand.Read(b)
	return b, os.WriteFile(path, b, 0o644)
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

func smallConfig() []byte {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 2048; i++ {
		fmt.Fprintf(&buf, "account.%d.label = bench line %d\n", i, i)
	}
	return buf.Bytes()[:2048]
}

func flagSet(name string) *flag.FlagSet { return cli.NewFlags(name, os.Stderr) }
