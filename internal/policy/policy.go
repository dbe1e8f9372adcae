// Package policy decides, for every request, whether it may be served:
// from the network it comes from, the tenant it belongs to, the device it
// names (MAC, brand, model) in the site inventory, the credentials it
// carried, and the kernel's neighbour table. Every decision has one reason
// code, is audited, and denials feed a per-source limiter that cuts off
// scanners. Nothing here asks the cloud.
package policy

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/device"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/originapi"
)

// Reason codes. Allow reasons say why a request passed.
const (
	AllowAllowlist   = "allowlist"   // source in the tenant's allow-list
	AllowCredentials = "credentials" // valid tenant credentials (HTTPS)

	DenyNotLAN         = "not_lan"         // source outside the LAN
	DenySourceBlocked  = "source_blocked"  // source in cool-down after too many denials
	DenyBadRequest     = "bad_request"     // malformed name, write request: refused by the front
	DenyMACConflict    = "mac_conflict"    // path and User-Agent name different MACs
	DenyBrandConflict  = "brand_conflict"  // file pattern and User-Agent disagree on the brand
	DenyUnknownMAC     = "unknown_mac"     // MAC not in the inventory
	DenyBrandMismatch  = "brand_mismatch"  // brand differs from the inventory
	DenyModelMismatch  = "model_mismatch"  // model differs from the inventory
	DenyNotAllowlisted = "not_allowlisted" // source outside the tenant's allow-list (or every allow-list)
	DenyAuthRequired   = "auth_required"   // the tenant wants credentials (TFTP cannot send any)
	DenyAuthFailed     = "auth_failed"     // credentials offered and wrong
	DenyTenantMismatch = "tenant_mismatch" // credentials of another tenant than the device's
	DenyL2Mismatch     = "l2_mismatch"     // the file names a MAC that is not the requester's own
	DenyL2Unknown      = "l2_unknown"      // the requester's MAC is not a device of the tenant
	DenyL2NoNeighbour  = "l2_no_neighbour" // on-link requester with no neighbour entry
	DenyCloudPrefix    = "cloud_"          // the cloud refused: cloud_<its reason>
)

// Transports.
const (
	TFTP  = "tftp"
	HTTPS = "https"
)

// Request is what the front knows about a request.
type Request struct {
	Transport string
	Source    netip.Addr
	File      string
	Identity  device.Identity
	// AuthTenant is the tenant whose credentials the request carried and
	// that the front verified (HTTPS); "" when none.
	AuthTenant string
	// AuthFailed says credentials were offered and did not verify.
	AuthFailed bool
}

// Decision is the answer, with the tenant and device it was made for.
type Decision struct {
	Allow  bool
	Reason string
	Tenant string
	Device *originapi.Device
	// Challenge lists, on denials that valid credentials would turn into an
	// allow, the tenants whose credentials would (HTTPS answers 401).
	Challenge []*inventory.Tenant
}

// Neighbours looks up the link-layer address behind an IP.
type Neighbours interface {
	Lookup(ip netip.Addr) (mac string, onLink bool, err error)
}

// Auditor records decisions.
type Auditor interface{ Record(audit.Record) }

// Config tunes the policy.
type Config struct {
	VerifyL2     bool          // check the neighbour table (tenants may override)
	MaxDenials   int           // denials a source may have in DenialWindow
	DenialWindow time.Duration //
	Cooldown     time.Duration // how long a source that exceeded them is ignored
	Logger       *slog.Logger
}

// Policy decides. Safe for concurrent use.
type Policy struct {
	cfg   Config
	log   *slog.Logger
	lan   atomic.Pointer[func(netip.Addr) bool]
	inv   func() *inventory.Index
	neigh Neighbours
	audit Auditor
	now   func() time.Time

	mu      sync.Mutex
	sources map[netip.Addr]*sourceState
}

type sourceState struct {
	limiter      *rate.Limiter
	blockedUntil time.Time
	lastDenial   time.Time
}

// New returns a policy. lan says which sources are on the LAN; inv gives
// the inventory in force.
func New(cfg Config, lan func(netip.Addr) bool, inv func() *inventory.Index, neigh Neighbours, aud Auditor) *Policy {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDenials <= 0 {
		cfg.MaxDenials = 20
	}
	if cfg.DenialWindow <= 0 {
		cfg.DenialWindow = time.Minute
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 5 * time.Minute
	}
	p := &Policy{cfg: cfg, log: cfg.Logger, inv: inv, neigh: neigh, audit: aud, now: time.Now, sources: map[netip.Addr]*sourceState{}}
	p.SetLAN(lan)
	return p
}

// OnLAN reports whether ip is a LAN source.
func (p *Policy) OnLAN(ip netip.Addr) bool { return (*p.lan.Load())(ip.Unmap()) }

// SetLAN replaces the LAN test (after a reload).
func (p *Policy) SetLAN(lan func(netip.Addr) bool) { p.lan.Store(&lan) }

// Decide authorizes a request, audits the decision and counts a denial
// against its source.
func (p *Policy) Decide(req Request) Decision {
	d := p.decide(req)
	p.record(req, d)
	return d
}

// Refuse records a refusal the front made itself (a malformed name, a
// write request), so scanners that send them are limited too.
func (p *Policy) Refuse(req Request, reason string) {
	p.record(req, Decision{Reason: reason})
}

// CloudDenied records that the cloud refused a request the policy allowed.
func (p *Policy) CloudDenied(req Request, d Decision, cloudReason string) {
	d.Allow, d.Reason = false, DenyCloudPrefix+cloudReason
	p.record(req, d)
}

func (p *Policy) decide(req Request) Decision {
	src := req.Source.Unmap()
	if !p.OnLAN(src) {
		return Decision{Reason: DenyNotLAN}
	}
	if p.blocked(src) {
		return Decision{Reason: DenySourceBlocked}
	}
	id := req.Identity
	switch id.Conflict {
	case device.ConflictMAC:
		return Decision{Reason: DenyMACConflict}
	case device.ConflictBrand:
		return Decision{Reason: DenyBrandConflict}
	}
	inv := p.inv()
	var (
		tenant *inventory.Tenant
		dev    *originapi.Device
	)
	if id.MAC != "" {
		d, ok := inv.Devices[id.MAC]
		switch {
		case !ok:
			return Decision{Reason: DenyUnknownMAC}
		case id.Brand != "" && id.Brand != d.Brand:
			return Decision{Reason: DenyBrandMismatch, Tenant: d.Tenant, Device: &d}
		case id.Model != "" && device.NormalizeModel(id.Model) != device.NormalizeModel(d.Model):
			return Decision{Reason: DenyModelMismatch, Tenant: d.Tenant, Device: &d}
		}
		dev, tenant = &d, inv.Tenants[d.Tenant]
		if tenant == nil {
			return Decision{Reason: DenyUnknownMAC, Device: dev}
		}
	} else {
		tenant = inv.TenantByAddr(src)
		if tenant == nil && req.AuthTenant != "" {
			tenant = inv.Tenants[req.AuthTenant]
		}
		if tenant == nil {
			d := Decision{Reason: DenyNotAllowlisted}
			if req.Transport == HTTPS {
				d.Challenge = outsideTenants(inv)
				if len(d.Challenge) > 0 {
					d.Reason = authReason(req)
				}
			}
			return d
		}
	}
	d := Decision{Tenant: tenant.ID, Device: dev}
	if req.AuthTenant != "" && req.AuthTenant != tenant.ID {
		d.Reason = DenyTenantMismatch
		return d
	}
	authed := req.AuthTenant == tenant.ID
	inAllow := tenant.Allows(src)
	opts := tenant.Options
	switch {
	case req.Transport != HTTPS && !inAllow:
		d.Reason = DenyNotAllowlisted
	case req.Transport != HTTPS && opts.AuthRequiredInAllowlist:
		d.Reason = DenyAuthRequired
	case inAllow && opts.AuthRequiredInAllowlist && !authed:
		d.Reason, d.Challenge = authReason(req), []*inventory.Tenant{tenant}
	case inAllow:
		d.Allow, d.Reason = true, AllowAllowlist
	case opts.AuthAllowedOutsideAllowlist && authed:
		d.Allow, d.Reason = true, AllowCredentials
	case opts.AuthAllowedOutsideAllowlist:
		d.Reason, d.Challenge = authReason(req), []*inventory.Tenant{tenant}
	default:
		d.Reason = DenyNotAllowlisted
	}
	if authed && d.Allow {
		d.Reason = AllowCredentials
	}
	if !d.Allow {
		return d
	}
	if reason := p.checkL2(src, id.MAC, tenant, inv); reason != "" {
		return Decision{Reason: reason, Tenant: tenant.ID, Device: dev}
	}
	return d
}

// authReason tells a request without credentials from one whose
// credentials failed.
func authReason(req Request) string {
	if req.AuthFailed {
		return DenyAuthFailed
	}
	return DenyAuthRequired
}

// outsideTenants are the tenants that accept credentials from outside their
// allow-lists, in ID order.
func outsideTenants(inv *inventory.Index) []*inventory.Tenant {
	var out []*inventory.Tenant
	for _, t := range inv.Tenants {
		if t.Options.AuthAllowedOutsideAllowlist {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *inventory.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// checkL2 applies the neighbour-table check when it is on for the tenant:
// an on-link requester must be the device its file names, and one asking
// for a common file must be a device of the tenant.
func (p *Policy) checkL2(src netip.Addr, mac string, tenant *inventory.Tenant, inv *inventory.Index) string {
	on := p.cfg.VerifyL2
	if tenant.Options.VerifyL2 != nil {
		on = *tenant.Options.VerifyL2
	}
	if !on || p.neigh == nil {
		return ""
	}
	hw, onLink, err := p.neigh.Lookup(src)
	if err != nil {
		p.log.Error("neighbour table lookup failed; denying", "client", src.String(), "err", err)
		return DenyL2NoNeighbour
	}
	switch {
	case !onLink:
		return "" // routed: no link-layer address to check
	case hw == "":
		return DenyL2NoNeighbour
	case mac != "" && hw != mac:
		return DenyL2Mismatch
	case mac == "":
		if d, ok := inv.Devices[hw]; !ok || d.Tenant != tenant.ID {
			return DenyL2Unknown
		}
	}
	return ""
}

func (p *Policy) record(req Request, d Decision) {
	now := p.now()
	id := req.Identity
	r := audit.Record{
		Time: now, Transport: req.Transport, Source: req.Source.Unmap().String(), MAC: id.MAC,
		Brand: id.Brand, Model: id.Model, File: req.File, Tenant: d.Tenant, Reason: d.Reason, Decision: "allow",
	}
	if !d.Allow {
		r.Decision = "deny"
		if p.countDenial(req.Source.Unmap(), now) {
			p.log.Warn("denied", "transport", req.Transport, "client", r.Source, "mac", id.MAC, "file", req.File, "tenant", d.Tenant, "reason", d.Reason)
		}
	}
	if p.audit != nil {
		p.audit.Record(r)
	}
}

// countDenial charges a denial to src; past MaxDenials per window the
// source is blocked for Cooldown. It reports whether the denial is worth
// a log line (not while the source is blocked, to keep floods out of logs).
func (p *Policy) countDenial(src netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.sources[src]
	if st == nil {
		if len(p.sources) >= maxSources {
			p.forget(now)
		}
		st = &sourceState{limiter: rate.NewLimiter(rate.Every(p.cfg.DenialWindow/time.Duration(p.cfg.MaxDenials)), p.cfg.MaxDenials)}
		p.sources[src] = st
	}
	st.lastDenial = now
	if now.Before(st.blockedUntil) {
		return false
	}
	if !st.limiter.AllowN(now, 1) {
		st.blockedUntil = now.Add(p.cfg.Cooldown)
		p.log.Warn("source cut off after too many denials", "client", src.String(), "cooldown", p.cfg.Cooldown, "max_denials", p.cfg.MaxDenials, "window", p.cfg.DenialWindow)
	}
	return true
}

func (p *Policy) blocked(src netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.sources[src]
	return st != nil && p.now().Before(st.blockedUntil)
}

// maxSources bounds the limiter table; idle sources are forgotten.
const maxSources = 65536

func (p *Policy) forget(now time.Time) {
	for ip, st := range p.sources {
		if now.After(st.blockedUntil) && now.Sub(st.lastDenial) > p.cfg.DenialWindow {
			delete(p.sources, ip)
		}
	}
}
