package refcloud

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/provgate/provgate/internal/macaddr"
	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/pki"
)

// InventoryFile is the name of the inventory inside a data folder.
const InventoryFile = "inventory.yaml"

// The inventory.yaml document, as operators write it.
type inventoryFile struct {
	Sites []siteDoc `yaml:"sites"`
}

type siteDoc struct {
	ID      string      `yaml:"id"`
	Tenants []tenantDoc `yaml:"tenants"`
}

type tenantDoc struct {
	ID          string          `yaml:"id"`
	AllowCIDRs  []string        `yaml:"allow_cidrs"`
	Realm       string          `yaml:"realm"`
	Credentials []credentialDoc `yaml:"credentials"`
	Options     optionsDoc      `yaml:"options"`
	Vars        map[string]any  `yaml:"vars"`
	Devices     []deviceDoc     `yaml:"devices"`
}

type credentialDoc struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

type optionsDoc struct {
	AuthRequiredInAllowlist     bool     `yaml:"auth_required_in_allowlist"`
	AuthAllowedOutsideAllowlist bool     `yaml:"auth_allowed_outside_allowlist"`
	AuthSchemes                 []string `yaml:"auth_schemes"`
	VerifyL2                    *bool    `yaml:"verify_l2"`
}

type deviceDoc struct {
	MAC   string         `yaml:"mac"`
	Brand string         `yaml:"brand"`
	Model string         `yaml:"model"`
	Vars  map[string]any `yaml:"vars"`
}

// Tenant IDs name folders under files/, so they keep to a safe alphabet.
var tenantRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Data is one loaded, validated snapshot of a data folder's inventory.
// It is never modified after loading; a reload builds a new one.
type Data struct {
	sites map[string]*Site
}

// Site is a site and the inventory document the cloud hands its gateway.
type Site struct {
	ID      string
	Tenants map[string]*Tenant
	Devices map[string]*Device // by normalised MAC

	inventory []byte // JSON of originapi.Inventory
	etag      string
}

// Tenant is a tenant with the template variables that never leave the cloud.
type Tenant struct {
	ID   string
	Vars map[string]any
}

// Device is a phone with its template variables.
type Device struct {
	MAC    string
	Brand  string
	Model  string
	Tenant string
	Vars   map[string]any
}

// LoadData reads and validates dir/inventory.yaml. Errors name the field.
func LoadData(dir string) (*Data, error) {
	raw, err := os.ReadFile(filepath.Join(dir, InventoryFile))
	if err != nil {
		return nil, fmt.Errorf("refcloud: %w", err)
	}
	var doc inventoryFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("refcloud: %s: %w", InventoryFile, err)
	}
	d := &Data{sites: make(map[string]*Site)}
	for i, sd := range doc.Sites {
		site, err := buildSite(sd)
		if err != nil {
			return nil, fmt.Errorf("refcloud: %s: sites[%d]: %w", InventoryFile, i, err)
		}
		if d.sites[site.ID] != nil {
			return nil, fmt.Errorf("refcloud: %s: sites[%d].id: duplicate site %q", InventoryFile, i, site.ID)
		}
		d.sites[site.ID] = site
	}
	return d, nil
}

func buildSite(sd siteDoc) (*Site, error) {
	if err := pki.ValidSite(sd.ID); err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	site := &Site{ID: sd.ID, Tenants: map[string]*Tenant{}, Devices: map[string]*Device{}}
	inv := originapi.Inventory{Site: sd.ID, Tenants: []originapi.Tenant{}, Devices: []originapi.Device{}}
	for ti, td := range sd.Tenants {
		at := fmt.Sprintf("tenants[%d]", ti)
		if !tenantRe.MatchString(td.ID) {
			return nil, fmt.Errorf("%s.id: invalid tenant %q: use 1-63 of a-z 0-9 . _ - starting with a letter or digit", at, td.ID)
		}
		if site.Tenants[td.ID] != nil {
			return nil, fmt.Errorf("%s.id: duplicate tenant %q", at, td.ID)
		}
		site.Tenants[td.ID] = &Tenant{ID: td.ID, Vars: td.Vars}
		t, err := apiTenant(td, at)
		if err != nil {
			return nil, err
		}
		inv.Tenants = append(inv.Tenants, t)
		for di, dd := range td.Devices {
			dat := fmt.Sprintf("%s.devices[%d]", at, di)
			mac, err := macaddr.Parse(dd.MAC)
			if err != nil {
				return nil, fmt.Errorf("%s.mac: %q: %w", dat, dd.MAC, err)
			}
			if prev := site.Devices[mac]; prev != nil {
				return nil, fmt.Errorf("%s.mac: %s is already a device of tenant %q", dat, mac, prev.Tenant)
			}
			if dd.Brand == "" || dd.Brand != strings.ToLower(dd.Brand) {
				return nil, fmt.Errorf("%s.brand: want a lowercase brand id, got %q", dat, dd.Brand)
			}
			dev := &Device{MAC: mac, Brand: dd.Brand, Model: dd.Model, Tenant: td.ID, Vars: dd.Vars}
			site.Devices[mac] = dev
			inv.Devices = append(inv.Devices, originapi.Device{MAC: mac, Brand: dev.Brand, Model: dev.Model, Tenant: td.ID})
		}
	}
	body, err := json.Marshal(inv)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	site.inventory, site.etag = body, originapi.ETag(sum[:])
	return site, nil
}

func apiTenant(td tenantDoc, at string) (originapi.Tenant, error) {
	t := originapi.Tenant{
		ID:          td.ID,
		AllowCIDRs:  []string{},
		Realm:       td.Realm,
		Credentials: []originapi.Credential{},
		Options: originapi.TenantOptions{
			AuthRequiredInAllowlist:     td.Options.AuthRequiredInAllowlist,
			AuthAllowedOutsideAllowlist: td.Options.AuthAllowedOutsideAllowlist,
			AuthSchemes:                 td.Options.AuthSchemes,
			VerifyL2:                    td.Options.VerifyL2,
		},
	}
	if t.Realm == "" {
		t.Realm = "provgate"
	}
	if len(t.Options.AuthSchemes) == 0 {
		t.Options.AuthSchemes = []string{"digest"}
	}
	for i, s := range t.Options.AuthSchemes {
		if s != "digest" && s != "basic" {
			return t, fmt.Errorf("%s.options.auth_schemes[%d]: %q is not digest or basic", at, i, s)
		}
	}
	for i, c := range td.AllowCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return t, fmt.Errorf("%s.allow_cidrs[%d]: %w", at, i, err)
		}
		t.AllowCIDRs = append(t.AllowCIDRs, p.Masked().String())
	}
	for i, c := range td.Credentials {
		if c.Username == "" || strings.ContainsAny(c.Username, ":\"") || c.Password == "" {
			return t, fmt.Errorf("%s.credentials[%d]: want a username without ':' or '\"' and a non-empty password", at, i)
		}
		md5, _ := originapi.HA1("MD5", c.Username, t.Realm, c.Password)
		s256, _ := originapi.HA1("SHA-256", c.Username, t.Realm, c.Password)
		t.Credentials = append(t.Credentials, originapi.Credential{Username: c.Username, HA1MD5: md5, HA1SHA256: s256})
	}
	return t, nil
}
