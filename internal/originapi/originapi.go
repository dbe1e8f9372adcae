// Package originapi holds the wire contract between a provgate gateway and a
// provisioning cloud (API v1, docs/origin-api.md): paths, query parameters,
// the inventory document, error bodies with reason codes, and the
// RFC 9530 Repr-Digest header. Both the reference cloud and the gateway's
// cloud client use it, so the two cannot drift apart.
package originapi

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Version is the API version this package speaks; it is the first path element.
const Version = "v1"

// Paths of API v1.
const (
	PathInventory = "/v1/inventory"
	PathFiles     = "/v1/files/" // followed by the file name as the phone asked for it
)

// Query parameters of a file request: the identity the gateway established.
const (
	ParamMAC       = "mac"
	ParamBrand     = "brand"
	ParamModel     = "model"
	ParamTenant    = "tenant"
	ParamTransport = "transport"
	ParamClientIP  = "client_ip"
)

// Transports a file request may name.
const (
	TransportTFTP  = "tftp"
	TransportHTTPS = "https"
)

// HeaderReprDigest carries the digest of the whole representation (RFC 9530).
const HeaderReprDigest = "Repr-Digest"

// Reason codes carried in error bodies.
const (
	ReasonBadRequest     = "bad_request"     // 400: malformed parameter or file name
	ReasonUnknownSite    = "unknown_site"    // 403: certificate's site is not in the inventory
	ReasonUnknownTenant  = "unknown_tenant"  // 403: tenant is not one of the site's
	ReasonUnknownMAC     = "unknown_mac"     // 403: MAC is not a device of the site
	ReasonTenantMismatch = "tenant_mismatch" // 403: device belongs to another tenant
	ReasonBrandMismatch  = "brand_mismatch"  // 403: brand differs from the inventory
	ReasonModelMismatch  = "model_mismatch"  // 403: model differs from the inventory
	ReasonMACMismatch    = "mac_mismatch"    // 403: file names a device other than the requester
	ReasonNotFound       = "not_found"       // 404: no such file (or path)
	ReasonMethod         = "method_not_allowed"
	ReasonRenderFailed   = "render_failed" // 500: a template failed to render
)

// Error is the JSON body of every 4xx and 5xx answer.
type Error struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "origin: " + e.Reason + ": " + e.Message }

// Inventory is the site's inventory document (GET /v1/inventory).
type Inventory struct {
	Site    string   `json:"site"`
	Tenants []Tenant `json:"tenants"`
	Devices []Device `json:"devices"`
}

// Tenant is one tenant of a site as the gateway needs it: no SIP secrets,
// only what authorizes requests.
type Tenant struct {
	ID          string        `json:"id"`
	AllowCIDRs  []string      `json:"allow_cidrs"`
	Realm       string        `json:"realm"`
	Credentials []Credential  `json:"credentials"`
	Options     TenantOptions `json:"options"`
}

// Credential lets the gateway verify HTTP Digest (RFC 7616) and Basic
// authentication without the cleartext password: HA1 = H(username ":" realm ":" password)
// for each algorithm, lowercase hex.
type Credential struct {
	Username  string `json:"username"`
	HA1MD5    string `json:"ha1_md5"`
	HA1SHA256 string `json:"ha1_sha256"`
}

// TenantOptions are the per-tenant switches of the authorization model.
type TenantOptions struct {
	// AuthRequiredInAllowlist demands credentials even from allow-listed networks.
	AuthRequiredInAllowlist bool `json:"auth_required_in_allowlist"`
	// AuthAllowedOutsideAllowlist admits HTTPS with valid credentials from LAN
	// addresses outside the allow-list.
	AuthAllowedOutsideAllowlist bool `json:"auth_allowed_outside_allowlist"`
	// AuthSchemes lists the HTTP schemes offered: "digest", "basic".
	AuthSchemes []string `json:"auth_schemes"`
	// VerifyL2, when set, overrides the gateway's global neighbour-table check.
	VerifyL2 *bool `json:"verify_l2,omitempty"`
}

// Device is one phone of the site.
type Device struct {
	MAC    string `json:"mac"` // 12 lowercase hex digits
	Brand  string `json:"brand"`
	Model  string `json:"model"`
	Tenant string `json:"tenant"`
}

// HA1 computes the Digest HA1 for algorithm "MD5" or "SHA-256".
func HA1(algorithm, username, realm, password string) (string, error) {
	in := []byte(username + ":" + realm + ":" + password)
	switch algorithm {
	case "MD5":
		sum := md5.Sum(in)
		return hex.EncodeToString(sum[:]), nil
	case "SHA-256":
		sum := sha256.Sum256(in)
		return hex.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("originapi: unsupported digest algorithm %q", algorithm)
}

// FormatReprDigest renders a SHA-256 sum as an RFC 9530 Repr-Digest value.
func FormatReprDigest(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// ErrNoSHA256 means a Repr-Digest header carries no sha-256 member.
var ErrNoSHA256 = errors.New("originapi: Repr-Digest has no valid sha-256 member")

// ParseReprDigest extracts the sha-256 member of a Repr-Digest value, which
// is a structured-field dictionary (RFC 8941) of byte sequences, e.g.
// `sha-512=:…:, sha-256=:…:`. Other algorithms are ignored.
func ParseReprDigest(v string) ([]byte, error) {
	for member := range strings.SplitSeq(v, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || key != "sha-256" {
			continue
		}
		if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			return nil, ErrNoSHA256
		}
		sum, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
		if err != nil || len(sum) != sha256.Size {
			return nil, ErrNoSHA256
		}
		return sum, nil
	}
	return nil, ErrNoSHA256
}

// ETag derives the strong entity tag the reference cloud uses from a
// content digest. Clients must treat ETags as opaque.
func ETag(sum []byte) string {
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}
