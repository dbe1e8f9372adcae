package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPConfig describes an HTTPS workload: GETs of one URL over kept-alive
// connections, each answer checked byte for byte.
type HTTPConfig struct {
	URL         string // https://127.0.0.1:port/…, loopback only
	Want        []byte
	Requests    int
	Concurrency int // connections, each doing requests one after another
	MaxDuration time.Duration
}

// RunHTTP performs the workload. TLS certificates are not verified (the
// servers measured use self-signed ones); the target must be loopback.
func RunHTTP(ctx context.Context, cfg HTTPConfig) (Result, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Hostname() != "127.0.0.1" && u.Hostname() != "::1" && u.Hostname() != "localhost" {
		return Result{}, fmt.Errorf("loadgen: %q is not a loopback URL", cfg.URL)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		next  atomic.Int64
		tally = newTally(cfg.Requests)
		wg    sync.WaitGroup
	)
	buf := make([][]byte, cfg.Concurrency)
	start := time.Now()
	for w := range cfg.Concurrency {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(cfg.Requests) && ctx.Err() == nil; i = next.Add(1) {
				t0 := time.Now()
				n, err := getOnce(ctx, client, cfg.URL, cfg.Want, &buf[w])
				tally.add(n, time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return tally.result(cfg.Requests, time.Since(start)), nil
}

func getOnce(ctx context.Context, c *http.Client, url string, want []byte, buf *[]byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	b := bytes.NewBuffer((*buf)[:0])
	n, err := b.ReadFrom(resp.Body)
	*buf = b.Bytes()
	if err != nil {
		return n, err
	}
	if !bytes.Equal(*buf, want) {
		return n, errors.New("content differs")
	}
	return n, nil
}
