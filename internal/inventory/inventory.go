// Package inventory keeps the site's inventory: tenants with their
// allow-lists, credentials and options, and devices with MAC, brand and
// model. It syncs from the cloud with ETags and keeps the last good copy
// in the encrypted cache, so decisions can be made while the cloud is away.
package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/macaddr"
	"github.com/provgate/provgate/internal/originapi"
)

// Index is one inventory, indexed for decisions. Never modified.
type Index struct {
	Site    string
	Devices map[string]originapi.Device // by MAC, 12 lowercase hex digits
	Tenants map[string]*Tenant
}

// Tenant is a tenant with its allow-list parsed.
type Tenant struct {
	originapi.Tenant
	Allow []netip.Prefix
}

// Allows reports whether ip is inside the tenant's allow-list.
func (t *Tenant) Allows(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range t.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Empty is the index before any inventory is known: every device unknown.
var Empty = &Index{Devices: map[string]originapi.Device{}, Tenants: map[string]*Tenant{}}

// NewIndex validates and indexes an inventory document.
func NewIndex(inv *originapi.Inventory) (*Index, error) {
	ix := &Index{Site: inv.Site, Devices: map[string]originapi.Device{}, Tenants: map[string]*Tenant{}}
	for i, t := range inv.Tenants {
		tt := &Tenant{Tenant: t}
		for j, c := range t.AllowCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("inventory: tenants[%d].allow_cidrs[%d]: %w", i, j, err)
			}
			tt.Allow = append(tt.Allow, p.Masked())
		}
		ix.Tenants[t.ID] = tt
	}
	for i, d := range inv.Devices {
		if !macaddr.IsNormal(d.MAC) {
			return nil, fmt.Errorf("inventory: devices[%d].mac: %q is not 12 lowercase hex digits", i, d.MAC)
		}
		if ix.Tenants[d.Tenant] == nil {
			return nil, fmt.Errorf("inventory: devices[%d].tenant: %q is not a tenant", i, d.Tenant)
		}
		ix.Devices[d.MAC] = d
	}
	return ix, nil
}

// TenantByAddr returns the tenant whose allow-list holds ip most
// specifically, or nil.
func (ix *Index) TenantByAddr(ip netip.Addr) *Tenant {
	ip = ip.Unmap().WithZone("")
	var best *Tenant
	bits := -1
	for _, t := range ix.Tenants {
		for _, p := range t.Allow {
			if p.Contains(ip) && (p.Bits() > bits || p.Bits() == bits && best != nil && t.ID < best.ID) {
				best, bits = t, p.Bits()
			}
		}
	}
	return best
}

// Source is what the syncer needs of the cloud.
type Source interface {
	Inventory(ctx context.Context, etag string) (*originapi.Inventory, string, error)
}

// Store is what the syncer needs of the cache.
type Store interface {
	Lookup(ctx context.Context, key string) (cache.Meta, error)
	Put(ctx context.Context, key string, m cache.Meta, body io.Reader) (cache.Meta, error)
	Touch(ctx context.Context, key string, m cache.Meta) error
	NewReader(ctx context.Context, key string, m cache.Meta) (*cache.Reader, error)
}

// cacheKey names the inventory in the cache; no file request can collide
// with it (file keys start with "v1\x00").
const cacheKey = "inventory\x00v1"

// Syncer keeps the current index. Safe for concurrent use.
type Syncer struct {
	src   Source
	store Store
	log   *slog.Logger

	cur       atomic.Pointer[Index]
	validated atomic.Int64 // unix nanoseconds of the last time the cloud vouched for it

	mu   sync.Mutex // serialises syncs
	meta cache.Meta // of the stored copy
}

// NewSyncer returns a syncer with the empty index.
func NewSyncer(src Source, store Store, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{src: src, store: store, log: log}
	s.cur.Store(Empty)
	return s
}

// Current returns the index in force (never nil).
func (s *Syncer) Current() *Index { return s.cur.Load() }

// Age is how long ago the cloud last vouched for the index in force; ok is
// false when no inventory is known at all.
func (s *Syncer) Age(now time.Time) (age time.Duration, ok bool) {
	v := s.validated.Load()
	if v == 0 {
		return 0, false
	}
	return now.Sub(time.Unix(0, v)), true
}

// LoadCached puts the copy kept in the cache in force, if there is one.
func (s *Syncer) LoadCached(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.store.Lookup(ctx, cacheKey)
	if err != nil {
		return err
	}
	r, err := s.store.NewReader(ctx, cacheKey, m)
	if err != nil {
		return err
	}
	defer r.Close()
	var inv originapi.Inventory
	if err := json.NewDecoder(r).Decode(&inv); err != nil {
		return fmt.Errorf("inventory: cached copy: %w", err)
	}
	ix, err := NewIndex(&inv)
	if err != nil {
		return err
	}
	s.install(ix, m)
	s.log.Info("inventory loaded from cache", "site", ix.Site, "devices", len(ix.Devices), "age", time.Since(m.Validated).Round(time.Second))
	return nil
}

func (s *Syncer) install(ix *Index, m cache.Meta) {
	s.cur.Store(ix)
	s.meta = m
	s.validated.Store(m.Validated.UnixNano())
}

// Sync asks the cloud for the inventory (with the ETag of the copy in
// force) and installs and stores a new one. On failure the index in force
// stays.
func (s *Syncer) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, etag, err := s.src.Inventory(ctx, s.meta.ETag)
	if err != nil {
		return fmt.Errorf("inventory: sync: %w", err)
	}
	now := time.Now()
	if inv == nil { // 304: unchanged
		m := s.meta
		m.Validated = now
		if err := s.store.Touch(ctx, cacheKey, m); err != nil && !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("inventory: record revalidation", "err", err)
		}
		s.meta = m
		s.validated.Store(now.UnixNano())
		return nil
	}
	ix, err := NewIndex(inv)
	if err != nil {
		return err
	}
	body, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	m, err := s.store.Put(ctx, cacheKey, cache.Meta{Status: 200, ETag: etag, Digest: sum[:], Size: int64(len(body)), Validated: now, MaxAge: 0}, bytes.NewReader(body))
	if err != nil {
		s.log.Warn("inventory: keep a copy in the cache", "err", err)
		m = cache.Meta{ETag: etag, Validated: now}
	}
	s.install(ix, m)
	s.log.Info("inventory synced", "site", ix.Site, "tenants", len(ix.Tenants), "devices", len(ix.Devices))
	return nil
}

// Run syncs every interval until ctx ends; failures are logged with the
// age of the inventory still in force.
func (s *Syncer) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
				age, ok := s.Age(time.Now())
				s.log.Warn("inventory sync failed, deciding from the last good copy", "err", err, "inventory_age", age.Round(time.Second), "known", ok)
			}
		}
	}
}
