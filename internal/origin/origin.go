// Package origin is the gateway's client of the provisioning cloud: HTTPS
// with TLS 1.3 and a client certificate, trusting only the configured
// cloud CA, with timeouts, bounded retries and a concurrency limit. It
// checks every body against its Repr-Digest while it streams.
package origin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provgate/provgate/internal/certfile"
	"github.com/provgate/provgate/internal/originapi"
)

// Config configures a Client.
type Config struct {
	URL           string        // https://host:port of the cloud
	CAFile        string        // the cloud CA: the only trusted root
	CertFile      string        // the gateway's client certificate
	KeyFile       string        // and its key; both re-read when they change
	Timeout       time.Duration // one attempt, headers included (body streaming is not bounded by it)
	Retries       int           // further attempts after a failure that may pass
	MaxConcurrent int           // requests in flight at once
	Logger        *slog.Logger
}

// Errors of the client.
var (
	ErrUnavailable    = errors.New("origin: cloud unavailable")
	ErrDigestMismatch = errors.New("origin: body does not match Repr-Digest")
)

// Client talks to the cloud. Safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	cfg  Config
	sem  chan struct{}
	log  *slog.Logger
}

// New builds a client; it reads the CA, certificate and key once to fail early.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("origin: url %q: want https://host[:port]", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("origin: cloud CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("origin: cloud CA %s holds no PEM certificate", cfg.CAFile)
	}
	certs, err := certfile.New(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("origin: client certificate: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion:           tls.VersionTLS13,
			RootCAs:              roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return certs.Get() },
		},
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   cfg.MaxConcurrent,
		ForceAttemptHTTP2:     true,
	}
	return &Client{
		base: base, cfg: cfg, log: cfg.Logger,
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("origin: the cloud does not redirect")
		}},
		sem: make(chan struct{}, cfg.MaxConcurrent),
	}, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// FileRequest is a file and the identity the gateway established.
type FileRequest struct {
	Name      string
	MAC       string
	Brand     string
	Model     string
	Tenant    string
	Transport string
	ClientIP  string
}

// Response is the cloud's answer. For 200 the caller must read Body to EOF
// (which verifies the digest) and Close it.
type Response struct {
	Status int // 200, 304, 403 or 404
	Reason string
	ETag   string
	MaxAge time.Duration
	Digest []byte // SHA-256 from Repr-Digest
	Size   int64
	Body   io.ReadCloser
}

// File asks for a file; etag, when set, is sent as If-None-Match.
func (c *Client) File(ctx context.Context, fr FileRequest, etag string) (*Response, error) {
	q := url.Values{}
	for k, v := range map[string]string{
		originapi.ParamMAC: fr.MAC, originapi.ParamBrand: fr.Brand, originapi.ParamModel: fr.Model,
		originapi.ParamTenant: fr.Tenant, originapi.ParamTransport: fr.Transport, originapi.ParamClientIP: fr.ClientIP,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u := c.base.JoinPath(originapi.PathFiles, fr.Name)
	u.RawQuery = q.Encode()
	return c.get(ctx, u, etag)
}

// Inventory fetches the site's inventory; with a matching etag the answer
// is (nil, "", nil) meaning "unchanged".
func (c *Client) Inventory(ctx context.Context, etag string) (*originapi.Inventory, string, error) {
	resp, err := c.get(ctx, c.base.JoinPath(originapi.PathInventory), etag)
	if err != nil {
		return nil, "", err
	}
	switch resp.Status {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
	default:
		return nil, "", fmt.Errorf("origin: inventory: %d %s", resp.Status, resp.Reason)
	}
	defer resp.Body.Close()
	var inv originapi.Inventory
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil {
		return nil, "", fmt.Errorf("origin: inventory: %w", err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil { // reach EOF: verifies the digest
		return nil, "", fmt.Errorf("origin: inventory: %w", err)
	}
	return &inv, resp.ETag, nil
}

// get performs one logical request with retries. Only failures that may
// pass are retried: network errors and 5xx.
func (c *Client) get(ctx context.Context, u *url.URL, etag string) (*Response, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	release := sync.OnceFunc(func() { <-c.sem })
	var lastErr error
	for attempt := 0; attempt <= c.cfg.Retries; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				break
			}
		}
		resp, err := c.once(ctx, u, etag, release)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		c.log.Warn("cloud request failed", "path", u.Path, "attempt", attempt+1, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	release()
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
}

// backoff is exponential from 100 ms with full jitter, capped at 2 s.
func backoff(attempt int) time.Duration {
	ceiling := min(2*time.Second, 100*time.Millisecond<<(attempt-1))
	return time.Duration(rand.Int64N(int64(ceiling))) + 10*time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) once(ctx context.Context, u *url.URL, etag string, release func()) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode, ETag: resp.Header.Get("ETag")}
	switch resp.StatusCode {
	case http.StatusOK:
		if out.Digest, err = originapi.ParseReprDigest(resp.Header.Get(originapi.HeaderReprDigest)); err != nil {
			resp.Body.Close()
			return nil, err
		}
		if resp.ContentLength < 0 {
			resp.Body.Close()
			return nil, errors.New("origin: 200 without Content-Length")
		}
		out.Size = resp.ContentLength
		out.MaxAge = maxAge(resp.Header.Get("Cache-Control"))
		out.Body = &verifier{r: resp.Body, c: resp.Body, h: sha256.New(), want: out.Digest, release: release}
		return out, nil
	case http.StatusNotModified:
		out.MaxAge = maxAge(resp.Header.Get("Cache-Control"))
	case http.StatusForbidden, http.StatusNotFound:
		var e originapi.Error
		json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		out.Reason = e.Reason
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("origin: %s answered %s", u.Path, resp.Status)
	}
	resp.Body.Close()
	release()
	return out, nil
}

// maxAge reads max-age from Cache-Control; absent or invalid is 0.
func maxAge(cc string) time.Duration {
	for d := range strings.SplitSeq(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(strings.ToLower(d)), "max-age="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				return time.Duration(min(n, 365*24*3600)) * time.Second
			}
		}
	}
	return 0
}

// verifier hashes a body as it streams and fails at EOF on a mismatch.
type verifier struct {
	r       io.Reader
	c       io.Closer
	h       hash.Hash
	want    []byte
	release func()
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) && subtle.ConstantTimeCompare(v.h.Sum(nil), v.want) != 1 {
		return n, ErrDigestMismatch
	}
	return n, err
}

func (v *verifier) Close() error {
	defer v.release()
	return v.c.Close()
}
