// Package loadgen is a TFTP load generator for benchmarks: read requests
// with blksize and tsize, phone-like retransmits, byte-exact validation of
// every transfer, bounded counts and durations, loopback targets only.
package loadgen

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"
)

// Config describes one workload.
type Config struct {
	Target      netip.AddrPort    // must be a loopback address
	Files       map[string][]byte // name → expected content; requests cycle through names
	Requests    int               // transfers in all
	Concurrency int               // transfers in flight; with Storm, all at once
	Storm       bool              // release every request at the same instant
	BlockSize   int               // blksize asked for; 0 or 512 asks for none
	Timeout     time.Duration     // retransmit timeout, as a phone's (default 1s)
	Retries     int               // retransmits before a transfer fails (default 5)
	MaxDuration time.Duration     // the whole run is cut off after this (default 2m)
}

// Result is what a run measured.
type Result struct {
	Transfers    int // succeeded, byte-exact
	Failures     int
	FirstError   string
	Bytes        int64
	Elapsed      time.Duration
	P50, P99     time.Duration
	Max          time.Duration
	RcvbufErrors int64 // kernel UDP receive-buffer drops during the run (all sockets)
}

// PerSecond is transfers per second.
func (r Result) PerSecond() float64 { return float64(r.Transfers) / r.Elapsed.Seconds() }

// MBPerSecond is payload megabytes (10^6) per second.
func (r Result) MBPerSecond() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// Run performs the workload and reports. It refuses non-loopback targets.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if !cfg.Target.Addr().IsLoopback() {
		return Result{}, fmt.Errorf("loadgen: target %s is not a loopback address", cfg.Target)
	}
	if len(cfg.Files) == 0 || cfg.Requests <= 0 {
		return Result{}, errors.New("loadgen: nothing to request")
	}
	if cfg.Storm {
		cfg.Concurrency = cfg.Requests // every request its own client, released at once
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()

	names := slices.Sorted(func(yield func(string) bool) {
		for n := range cfg.Files {
			if !yield(n) {
				return
			}
		}
	})
	sums := map[string][32]byte{}
	for n, b := range cfg.Files {
		sums[n] = sha256.Sum256(b)
	}

	var (
		next    atomic.Int64
		tally   = newTally(cfg.Requests)
		wg      sync.WaitGroup
		release = make(chan struct{})
	)
	drops0 := rcvbufErrors()
	worker := func() {
		defer wg.Done()
		<-release
		for {
			i := next.Add(1) - 1
			if i >= int64(cfg.Requests) || ctx.Err() != nil {
				return
			}
			name := names[int(i)%len(names)]
			start := time.Now()
			n, err := fetch(cfg, name, sums[name])
			tally.add(n, time.Since(start), err)
		}
	}
	wg.Add(cfg.Concurrency)
	for range cfg.Concurrency {
		go worker()
	}
	start := time.Now()
	close(release)
	wg.Wait()
	res := tally.result(cfg.Requests, time.Since(start))
	res.RcvbufErrors = rcvbufErrors() - drops0
	return res, nil
}

// tally collects the outcome of each transfer of a run.
type tally struct {
	mu        sync.Mutex
	res       Result
	latencies []time.Duration
}

func newTally(n int) *tally { return &tally{latencies: make([]time.Duration, 0, n)} }

func (t *tally) add(bytes int64, d time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.res.Failures++
		if t.res.FirstError == "" {
			t.res.FirstError = err.Error()
		}
		return
	}
	t.res.Transfers++
	t.res.Bytes += bytes
	t.latencies = append(t.latencies, d)
}

// result closes the run: requests never made (cut off by the run's bound)
// count as failures; latencies are over the successful transfers.
func (t *tally) result(requests int, elapsed time.Duration) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := t.res
	res.Elapsed = elapsed
	res.Failures += requests - res.Transfers - res.Failures
	slices.Sort(t.latencies)
	if n := len(t.latencies); n > 0 {
		res.P50 = t.latencies[n/2]
		res.P99 = t.latencies[min(n-1, n*99/100)]
		res.Max = t.latencies[n-1]
	}
	return res
}

// fetch does one transfer and checks it byte for byte.
func fetch(cfg Config, name string, want [32]byte) (int64, error) {
	c, err := tftp.NewClient(cfg.Target.String())
	if err != nil {
		return 0, err
	}
	c.SetTimeout(cfg.Timeout)
	c.SetRetries(cfg.Retries)
	if cfg.BlockSize > 512 {
		c.SetBlockSize(cfg.BlockSize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := wt.WriteTo(h)
	if err != nil {
		return n, err
	}
	if size, ok := wt.(tftp.IncomingTransfer).Size(); ok && size != n {
		return n, fmt.Errorf("%s: tsize %d, received %d", name, size, n)
	}
	if !equalSum(h, want) {
		return n, fmt.Errorf("%s: content differs", name)
	}
	return n, nil
}

func equalSum(h hash.Hash, want [32]byte) bool {
	var got [32]byte
	h.Sum(got[:0])
	return got == want
}

// rcvbufErrors reads the kernel's UDP RcvbufErrors counter (/proc/net/snmp).
func rcvbufErrors() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		if i := slices.Index(header, "RcvbufErrors"); i > 0 && i < len(fields) {
			n, _ := strconv.ParseInt(fields[i], 10, 64)
			return n
		}
	}
	return 0
}
