package policy

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/audit"
	"github.com/provgate/provgate/internal/device"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/originapi"
)

func testIndex(t *testing.T) *inventory.Index {
	t.Helper()
	yes := true
	ix, err := inventory.NewIndex(&originapi.Inventory{
		Site: "s",
		Tenants: []originapi.Tenant{
			{ID: "acme", AllowCIDRs: []string{"10.20.0.0/16"}, Options: originapi.TenantOptions{AuthAllowedOutsideAllowlist: true}},
			{ID: "globex", AllowCIDRs: []string{"10.30.0.0/16"}, Options: originapi.TenantOptions{AuthRequiredInAllowlist: true}},
			{ID: "initech", AllowCIDRs: []string{"10.40.0.0/16"}, Options: originapi.TenantOptions{VerifyL2: &yes}},
		},
		Devices: []originapi.Device{
			{MAC: "001565123456", Brand: "yealink", Model: "T46S", Tenant: "acme"},
			{MAC: "0004f2abcdef", Brand: "polycom", Model: "VVX411", Tenant: "acme"},
			{MAC: "000413778899", Brand: "snom", Model: "D785", Tenant: "globex"},
			{MAC: "805ec0000001", Brand: "yealink", Model: "T54W", Tenant: "initech"},
			{MAC: "805ec0000002", Brand: "yealink", Model: "T54W", Tenant: "initech"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// fakeNeighbours is a neighbour table: 10.40.1.0/24 and 10.20.1.0/24 are on-link.
type fakeNeighbours map[string]string

func (f fakeNeighbours) Lookup(ip netip.Addr) (string, bool, error) {
	if !netip.MustParsePrefix("10.40.1.0/24").Contains(ip) && !netip.MustParsePrefix("10.20.1.0/24").Contains(ip) {
		return "", false, nil
	}
	return f[ip.String()], true, nil
}

type recorder struct {
	mu   sync.Mutex
	rows []audit.Record
}

func (r *recorder) Record(rec audit.Record) { r.mu.Lock(); r.rows = append(r.rows, rec); r.mu.Unlock() }

func newPolicy(t *testing.T, cfg Config) (*Policy, *recorder) {
	t.Helper()
	ix := testIndex(t)
	lan := netip.MustParsePrefix("10.0.0.0/8")
	rec := &recorder{}
	neigh := fakeNeighbours{"10.40.1.10": "805ec0000001", "10.40.1.11": "001565123456", "10.40.1.12": "02aabbccddee", "10.20.1.10": "0004f2abcdef"}
	return New(cfg, lan.Contains, func() *inventory.Index { return ix }, neigh, rec), rec
}

func req(transport, src, file, ua, authTenant string) Request {
	return Request{Transport: transport, Source: netip.MustParseAddr(src), File: file, Identity: device.Identify(file, ua), AuthTenant: authTenant}
}

func TestDecisions(t *testing.T) {
	p, rec := newPolicy(t, Config{})
	tests := []struct {
		name   string
		req    Request
		allow  bool
		reason string
		tenant string
	}{
		{"device in its tenant's allow-list", req(TFTP, "10.20.0.5", "001565123456.cfg", "", ""), true, AllowAllowlist, "acme"},
		{"common file by allow-list", req(TFTP, "10.20.0.5", "000000000000.cfg", "", ""), true, AllowAllowlist, "acme"},
		{"not on the LAN", req(TFTP, "192.0.2.1", "001565123456.cfg", "", ""), false, DenyNotLAN, ""},
		{"unknown MAC", req(TFTP, "10.20.0.5", "0015650000ff.cfg", "", ""), false, DenyUnknownMAC, ""},
		{"brand mismatch from the file pattern", req(TFTP, "10.20.0.5", "SEP001565123456.cnf.xml", "", ""), false, DenyBrandMismatch, "acme"},
		{"model mismatch from the file pattern", req(TFTP, "10.30.0.5", "snomD715-000413778899.htm", "", ""), false, DenyModelMismatch, "globex"},
		{"model mismatch from the user-agent", req(HTTPS, "10.20.0.5", "001565123456.cfg", "Yealink SIP-T54W 96.85.0.5 00:15:65:12:34:56", ""), false, DenyModelMismatch, "acme"},
		{"model matches whatever the punctuation", req(HTTPS, "10.20.0.5", "0004f2abcdef.cfg", "FileTransport PolycomVVX-VVX_411-UA/6.4.3 Type/Application", ""), true, AllowAllowlist, "acme"},
		{"MAC conflict", req(HTTPS, "10.20.0.5", "001565123456.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:65:43:21", ""), false, DenyMACConflict, ""},
		{"two MACs in a name", req(TFTP, "10.20.0.5", "001565123456-0004f2abcdef.cfg", "", ""), false, DenyMACConflict, ""},
		{"brand conflict", req(HTTPS, "10.20.0.5", "SEP001565123456.cnf.xml", "Yealink SIP-T46S 66.86.0.15", ""), false, DenyBrandConflict, ""},
		{"device outside its tenant's allow-list", req(TFTP, "10.30.0.5", "001565123456.cfg", "", ""), false, DenyNotAllowlisted, "acme"},
		{"common file outside every allow-list", req(TFTP, "10.50.0.5", "000000000000.cfg", "", ""), false, DenyNotAllowlisted, ""},
		{"TFTP to a tenant that requires credentials", req(TFTP, "10.30.0.5", "000413778899.xml", "", ""), false, DenyAuthRequired, "globex"},
		{"HTTPS without credentials there", req(HTTPS, "10.30.0.5", "000413778899.xml", "", ""), false, DenyAuthRequired, "globex"},
		{"HTTPS with credentials there", req(HTTPS, "10.30.0.5", "000413778899.xml", "", "globex"), true, AllowCredentials, "globex"},
		{"HTTPS with credentials outside the allow-list", req(HTTPS, "10.60.0.5", "001565123456.cfg", "", "acme"), true, AllowCredentials, "acme"},
		{"HTTPS without credentials outside the allow-list", req(HTTPS, "10.60.0.5", "001565123456.cfg", "", ""), false, DenyAuthRequired, "acme"},
		{"HTTPS credentials of another tenant", req(HTTPS, "10.20.0.5", "001565123456.cfg", "", "globex"), false, DenyTenantMismatch, "acme"},
		{"credentials name the tenant of a common file", req(HTTPS, "10.60.0.5", "000000000000.cfg", "", "acme"), true, AllowCredentials, "acme"},
		{"outside the allow-list where credentials do not help", req(HTTPS, "10.60.0.5", "000413778899.xml", "", "globex"), false, DenyNotAllowlisted, "globex"},
		{"L2: the device's own file", req(TFTP, "10.40.1.10", "805ec0000001.cfg", "", ""), true, AllowAllowlist, "initech"},
		{"L2: another device's file", req(TFTP, "10.40.1.10", "805ec0000002.cfg", "", ""), false, DenyL2Mismatch, "initech"},
		{"L2: common file to a device of the tenant", req(TFTP, "10.40.1.10", "y000000000000.boot", "", ""), true, AllowAllowlist, "initech"},
		{"L2: common file to a device of another tenant", req(TFTP, "10.40.1.11", "y000000000000.boot", "", ""), false, DenyL2Unknown, "initech"},
		{"L2: common file to a stranger", req(TFTP, "10.40.1.12", "y000000000000.boot", "", ""), false, DenyL2Unknown, "initech"},
		{"L2: no neighbour entry", req(TFTP, "10.40.1.13", "y000000000000.boot", "", ""), false, DenyL2NoNeighbour, "initech"},
		{"L2: routed requester is not checked", req(TFTP, "10.40.2.13", "805ec0000002.cfg", "", ""), true, AllowAllowlist, "initech"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.req)
			if d.Allow != tt.allow || d.Reason != tt.reason || d.Tenant != tt.tenant {
				t.Fatalf("got allow=%v reason=%s tenant=%s; want %v %s %s", d.Allow, d.Reason, d.Tenant, tt.allow, tt.reason, tt.tenant)
			}
			last := rec.rows[len(rec.rows)-1]
			want := map[bool]string{true: "allow", false: "deny"}[tt.allow]
			if last.Decision != want || last.Reason != tt.reason || last.File != tt.req.File {
				t.Fatalf("audit row %+v", last)
			}
		})
	}
}

func TestGlobalVerifyL2(t *testing.T) {
	on, _ := newPolicy(t, Config{VerifyL2: true})
	off, _ := newPolicy(t, Config{})
	// The Polycom at 10.20.1.10 (on-link) asks for the Yealink's file.
	r := req(TFTP, "10.20.1.10", "001565123456.cfg", "", "")
	if d := on.Decide(r); d.Reason != DenyL2Mismatch {
		t.Fatalf("with verify_l2: %s", d.Reason)
	}
	if d := off.Decide(r); !d.Allow {
		t.Fatalf("without verify_l2: %s", d.Reason)
	}
	if d := on.Decide(req(TFTP, "10.20.1.10", "0004f2abcdef.cfg", "", "")); !d.Allow {
		t.Fatalf("its own file with verify_l2: %s", d.Reason)
	}
}

func TestScannersAreCutOffThenLetBackIn(t *testing.T) {
	p, rec := newPolicy(t, Config{MaxDenials: 5, DenialWindow: time.Minute, Cooldown: 10 * time.Minute})
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	scanner := "10.20.0.66"
	for i := range 5 {
		mac := []byte("0015650000f0")
		mac[11] = "0123456789abcdef"[i]
		if d := p.Decide(req(TFTP, scanner, string(mac)+".cfg", "", "")); d.Reason != DenyUnknownMAC {
			t.Fatalf("scan %d: %s", i, d.Reason)
		}
	}
	p.Decide(req(TFTP, scanner, "0015650000aa.cfg", "", "")) // the one too many
	good := req(TFTP, scanner, "001565123456.cfg", "", "")
	if d := p.Decide(good); d.Reason != DenySourceBlocked {
		t.Fatalf("after the scan: %s", d.Reason)
	}
	if d := p.Decide(req(TFTP, "10.20.0.5", "001565123456.cfg", "", "")); !d.Allow {
		t.Fatalf("another source is not affected: %s", d.Reason)
	}
	now = now.Add(9 * time.Minute)
	if d := p.Decide(good); d.Reason != DenySourceBlocked {
		t.Fatalf("during the cool-down: %s", d.Reason)
	}
	now = now.Add(2 * time.Minute)
	if d := p.Decide(good); !d.Allow {
		t.Fatalf("after the cool-down: %s", d.Reason)
	}
	blocked := 0
	for _, r := range rec.rows {
		if r.Reason == DenySourceBlocked {
			blocked++
		}
	}
	if blocked != 2 {
		t.Fatalf("%d source_blocked rows audited", blocked)
	}
}

func TestCloudDenialsAndRefusalsAreAudited(t *testing.T) {
	p, rec := newPolicy(t, Config{})
	r := req(TFTP, "10.20.0.5", "001565123456.cfg", "", "")
	d := p.Decide(r)
	p.CloudDenied(r, d, "model_mismatch")
	p.Refuse(req(TFTP, "10.20.0.5", "x", "", ""), DenyBadRequest)
	got := rec.rows[len(rec.rows)-2:]
	if got[0].Reason != "cloud_model_mismatch" || got[0].Decision != "deny" || got[0].Tenant != "acme" || got[1].Reason != DenyBadRequest {
		t.Fatalf("%+v", got)
	}
}
