// Package gateway is the read path every front end shares: answer from a
// fresh cache entry; otherwise ask the cloud once per file however many
// phones ask at the same time, store what it answers, and serve it; when
// the cloud fails, serve the last good copy up to a staleness bound.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/origin"
)

// Store is what the gateway needs of the cache.
type Store interface {
	Lookup(ctx context.Context, key string) (cache.Meta, error)
	Put(ctx context.Context, key string, m cache.Meta, body io.Reader) (cache.Meta, error)
	Touch(ctx context.Context, key string, m cache.Meta) error
	NewReader(ctx context.Context, key string, m cache.Meta) (*cache.Reader, error)
}

// Origin is what the gateway needs of the cloud.
type Origin interface {
	File(ctx context.Context, fr origin.FileRequest, etag string) (*origin.Response, error)
}

var (
	_ Store  = (*cache.Store)(nil)
	_ Origin = (*origin.Client)(nil)
)

// Errors a front end maps to its protocol.
var (
	ErrDenied      = errors.New("gateway: denied by the cloud")
	ErrNotFound    = errors.New("gateway: no such file")
	ErrUnavailable = errors.New("gateway: cloud unavailable and no usable cached copy")
)

// RefusedError is the cloud's refusal (403 or 404) with its reason code.
type RefusedError struct {
	Status int
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Status == http.StatusNotFound {
		return ErrNotFound.Error() + " (cloud: " + e.Reason + ")"
	}
	return ErrDenied.Error() + " (cloud: " + e.Reason + ")"
}

// Is makes a refusal match ErrDenied or ErrNotFound.
func (e *RefusedError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound || target == ErrDenied && e.Status != http.StatusNotFound
}

// Outcome says how a request was answered; it goes into the transfer log.
type Outcome string

// Outcomes.
const (
	OutcomeHit         Outcome = "hit"         // fresh cache entry
	OutcomeMiss        Outcome = "miss"        // fetched from the cloud
	OutcomeRevalidated Outcome = "revalidated" // cloud said 304
	OutcomeStale       Outcome = "stale"       // cloud failed, served the last good copy
	OutcomeNegative    Outcome = "negative"    // refusal answered from the cache
	OutcomeError       Outcome = "error"
)

// Request is a file request after the front end and identity.
type Request struct {
	Name      string
	MAC       string
	Brand     string
	Model     string
	Tenant    string
	Transport string
	Client    netip.Addr
}

// key is the cache key: the file name, the device and the tenant the cloud
// answers for. Brand and model are checked against the inventory before a
// request gets here, and transport and client address are informational,
// so none of them splits the cache: a phone gets the same copy over TFTP
// and HTTPS.
func (r Request) key() string {
	return strings.Join([]string{"v1", r.Name, r.MAC, r.Tenant}, "\x00")
}

// Config tunes a Gateway.
type Config struct {
	MaxStale     time.Duration // serve stale up to this long past max-age
	NegativeTTL  time.Duration // how long a 403/404 is remembered
	FetchTimeout time.Duration // a whole cloud fetch, body included
	Logger       *slog.Logger
}

// Gateway serves files. Safe for concurrent use.
type Gateway struct {
	store  Store
	origin Origin
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	group  singleflight.Group
}

// New returns a gateway over store and origin.
func New(store Store, o Origin, cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 30 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 5 * time.Minute
	}
	return &Gateway{store: store, origin: o, cfg: cfg, log: cfg.Logger, now: time.Now}
}

// File is an open file to serve.
type File struct {
	io.ReadCloser
	Size    int64
	ETag    string
	Outcome Outcome
}

// Open answers a request: a file to stream, or ErrDenied, ErrNotFound or
// ErrUnavailable (wrapped with the cause, for the log only).
func (g *Gateway) Open(ctx context.Context, req Request) (*File, error) {
	key := req.key()
	f, err := g.open(ctx, req, key)
	if errors.Is(err, cache.ErrCorrupt) {
		// The store raised the alarm and dropped the entry: fetch it again, once.
		f, err = g.open(ctx, req, key)
	}
	return f, err
}

func (g *Gateway) open(ctx context.Context, req Request, key string) (*File, error) {
	m, err := g.store.Lookup(ctx, key)
	if err == nil && m.Fresh(g.now()) {
		return g.serve(ctx, key, m, hitOutcome(m))
	}
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		g.log.Error("cache lookup failed", "err", err)
	}
	res := g.group.DoChan(key, func() (any, error) { return g.refresh(req, key) })
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case r := <-res:
		if r.Err != nil {
			return nil, r.Err
		}
		f := r.Val.(fetched)
		return g.serve(ctx, key, f.meta, f.outcome)
	}
}

func hitOutcome(m cache.Meta) Outcome {
	if m.Status != http.StatusOK {
		return OutcomeNegative
	}
	return OutcomeHit
}

type fetched struct {
	meta    cache.Meta
	outcome Outcome
}

// refresh runs once per key at a time, on a context of its own: a phone
// that gives up does not cancel the fetch the others wait for.
func (g *Gateway) refresh(req Request, key string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.FetchTimeout)
	defer cancel()
	now := g.now()
	old, err := g.store.Lookup(ctx, key)
	have := err == nil
	if have && old.Fresh(now) { // another flight refreshed it just before us
		return fetched{old, hitOutcome(old)}, nil
	}
	etag := ""
	if have && old.Status == http.StatusOK {
		etag = old.ETag
	}
	resp, err := g.origin.File(ctx, origin.FileRequest{
		Name: req.Name, MAC: req.MAC, Brand: req.Brand, Model: req.Model, Tenant: req.Tenant,
		Transport: req.Transport, ClientIP: addrString(req.Client),
	}, etag)
	if err == nil {
		var m cache.Meta
		m, err = g.store1(ctx, key, old, resp)
		if err == nil {
			return fetched{m, outcomeOf(resp.Status)}, nil
		}
	}
	// The cloud failed or lied. Serve the last good copy while it is
	// within max_stale; never a refusal past its TTL.
	if have && old.Status == http.StatusOK && old.Expired(now) <= g.cfg.MaxStale {
		g.log.Warn("cloud failed, serving stale copy", "file", req.Name, "mac", req.MAC, "stale_for", old.Expired(now).Round(time.Second), "err", err)
		return fetched{old, OutcomeStale}, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func outcomeOf(status int) Outcome {
	switch status {
	case http.StatusNotModified:
		return OutcomeRevalidated
	case http.StatusOK:
		return OutcomeMiss
	}
	return OutcomeNegative
}

// store1 records the cloud's answer and returns the entry to serve.
func (g *Gateway) store1(ctx context.Context, key string, old cache.Meta, resp *origin.Response) (cache.Meta, error) {
	now := g.now()
	switch resp.Status {
	case http.StatusNotModified:
		old.Validated, old.MaxAge = now, resp.MaxAge
		if err := g.store.Touch(ctx, key, old); err != nil {
			return cache.Meta{}, err
		}
		return old, nil
	case http.StatusOK:
		defer resp.Body.Close()
		return g.store.Put(ctx, key, cache.Meta{
			Status: http.StatusOK, ETag: resp.ETag, Digest: resp.Digest, Size: resp.Size,
			Validated: now, MaxAge: resp.MaxAge,
		}, resp.Body)
	default: // 403, 404: remembered briefly, and they replace any content
		return g.store.Put(ctx, key, cache.Meta{
			Status: resp.Status, Reason: resp.Reason, Validated: now, MaxAge: g.cfg.NegativeTTL,
		}, nil)
	}
}

// serve turns an entry into an answer.
func (g *Gateway) serve(ctx context.Context, key string, m cache.Meta, outcome Outcome) (*File, error) {
	if m.Status != http.StatusOK {
		return nil, &RefusedError{Status: m.Status, Reason: m.Reason}
	}
	r, err := g.store.NewReader(ctx, key, m)
	if err != nil {
		return nil, err
	}
	return &File{ReadCloser: r, Size: m.Size, ETag: m.ETag, Outcome: outcome}, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
