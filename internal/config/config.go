// Package config loads provgate's YAML configuration: strict decoding
// (unknown keys are errors), defaults, then validation whose messages name
// the field at fault. Relative paths are taken from the config file's folder.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	Cloud     Cloud     `yaml:"cloud"`
	LAN       LAN       `yaml:"lan"`
	TFTP      TFTP      `yaml:"tftp"`
	HTTPS     HTTPS     `yaml:"https"`
	Cache     Cache     `yaml:"cache"`
	Inventory Inventory `yaml:"inventory"`
	Policy    Policy    `yaml:"policy"`
	Audit     Audit     `yaml:"audit"`
	Log       Log       `yaml:"log"`
}

// Inventory configures the inventory sync.
type Inventory struct {
	Refresh time.Duration `yaml:"refresh"`
}

// Policy configures authorization.
type Policy struct {
	VerifyL2     bool          `yaml:"verify_l2"`
	MaxDenials   int           `yaml:"max_denials"`
	DenialWindow time.Duration `yaml:"denial_window"`
	Cooldown     time.Duration `yaml:"cooldown"`
}

// Audit configures the audit log.
type Audit struct {
	Path      string        `yaml:"path"`
	Retention time.Duration `yaml:"retention"`
	MaxRows   int64         `yaml:"max_rows"`
}

// Cloud is how to reach the provisioning cloud.
type Cloud struct {
	URL           string        `yaml:"url"`
	CA            string        `yaml:"ca"`
	Cert          string        `yaml:"cert"`
	Key           string        `yaml:"key"`
	Timeout       time.Duration `yaml:"timeout"`
	Retries       *int          `yaml:"retries"`
	MaxConcurrent int           `yaml:"max_concurrent"`
}

// LAN chooses the networks served.
type LAN struct {
	Networks  []string `yaml:"networks"`
	Template  string   `yaml:"template"`
	LinkLocal bool     `yaml:"link_local"`
}

// TFTP configures the TFTP front.
type TFTP struct {
	Enabled      *bool         `yaml:"enabled"`
	Port         int           `yaml:"port"`
	MaxBlockSize int           `yaml:"max_block_size"`
	MaxTransfers int           `yaml:"max_transfers"`
	Timeout      time.Duration `yaml:"timeout"`
	Retries      int           `yaml:"retries"`
	ReadBuffer   Size          `yaml:"read_buffer"`
}

// HTTPS configures the HTTPS front.
type HTTPS struct {
	Enabled       *bool         `yaml:"enabled"`
	Port          int           `yaml:"port"`
	PathPrefix    string        `yaml:"path_prefix"`
	Certificates  []CertPair    `yaml:"certificates"`
	NonceLifetime time.Duration `yaml:"nonce_lifetime"`
}

// CertPair is a certificate and its key, PEM files.
type CertPair struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HTTPSEnabled reports whether HTTPS is served.
func (c *Config) HTTPSEnabled() bool { return c.HTTPS.Enabled == nil || *c.HTTPS.Enabled }

// Cache configures the encrypted cache.
type Cache struct {
	Path        string        `yaml:"path"`
	KeyFile     string        `yaml:"key_file"`
	MaxSize     Size          `yaml:"max_size"`
	MaxStale    time.Duration `yaml:"max_stale"`
	NegativeTTL time.Duration `yaml:"negative_ttl"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Size is a byte count written as "4MiB", "2GB" or a plain number.
type Size int64

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := humanize.ParseBytes(n.Value)
	if err != nil || v > 1<<50 {
		return fmt.Errorf("line %d: %q is not a size (e.g. 4MiB, 2GB)", n.Line, n.Value)
	}
	*s = Size(v)
	return nil
}

// TFTPEnabled reports whether TFTP is served.
func (c *Config) TFTPEnabled() bool { return c.TFTP.Enabled == nil || *c.TFTP.Enabled }

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.resolvePaths(filepath.Dir(path))
	return c, nil
}

// Parse decodes and validates a configuration document.
func Parse(raw []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // empty: validation names what is missing
		return nil, err
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.Cloud.Timeout == 0 {
		c.Cloud.Timeout = 10 * time.Second
	}
	if c.Cloud.Retries == nil {
		two := 2
		c.Cloud.Retries = &two
	}
	if c.Cloud.MaxConcurrent == 0 {
		c.Cloud.MaxConcurrent = 64
	}
	if c.TFTP.Port == 0 {
		c.TFTP.Port = 69
	}
	if c.TFTP.MaxBlockSize == 0 {
		c.TFTP.MaxBlockSize = 1468
	}
	if c.TFTP.MaxTransfers == 0 {
		c.TFTP.MaxTransfers = 4096
	}
	if c.TFTP.Timeout == 0 {
		c.TFTP.Timeout = 2 * time.Second
	}
	if c.TFTP.Retries == 0 {
		c.TFTP.Retries = 5
	}
	if c.TFTP.ReadBuffer == 0 {
		c.TFTP.ReadBuffer = 4 << 20
	}
	if c.HTTPS.Port == 0 {
		c.HTTPS.Port = 443
	}
	if c.HTTPS.PathPrefix == "" {
		c.HTTPS.PathPrefix = "/"
	}
	if c.HTTPS.NonceLifetime == 0 {
		c.HTTPS.NonceLifetime = 5 * time.Minute
	}
	if c.Cache.Path == "" {
		c.Cache.Path = "/var/lib/provgate/cache.db"
	}
	if c.Cache.KeyFile == "" {
		c.Cache.KeyFile = "/etc/provgate/cache.key"
	}
	if c.Cache.MaxSize == 0 {
		c.Cache.MaxSize = 2 << 30
	}
	if c.Cache.MaxStale == 0 {
		c.Cache.MaxStale = 7 * 24 * time.Hour
	}
	if c.Cache.NegativeTTL == 0 {
		c.Cache.NegativeTTL = 30 * time.Second
	}
	if c.Inventory.Refresh == 0 {
		c.Inventory.Refresh = time.Minute
	}
	if c.Policy.MaxDenials == 0 {
		c.Policy.MaxDenials = 20
	}
	if c.Policy.DenialWindow == 0 {
		c.Policy.DenialWindow = time.Minute
	}
	if c.Policy.Cooldown == 0 {
		c.Policy.Cooldown = 5 * time.Minute
	}
	if c.Audit.Path == "" {
		c.Audit.Path = "/var/lib/provgate/audit.db"
	}
	if c.Audit.Retention == 0 {
		c.Audit.Retention = 30 * 24 * time.Hour
	}
	if c.Audit.MaxRows == 0 {
		c.Audit.MaxRows = 1_000_000
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// Validate checks every field; the first error names it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Cloud.URL == "" {
		bad("cloud.url", "required (https://host:port of the provisioning cloud)")
	} else if u, err := url.Parse(c.Cloud.URL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		bad("cloud.url", "%q: want https://host[:port]", c.Cloud.URL)
	}
	for _, f := range []struct{ field, value string }{{"cloud.ca", c.Cloud.CA}, {"cloud.cert", c.Cloud.Cert}, {"cloud.key", c.Cloud.Key}} {
		if f.value == "" {
			bad(f.field, "required (a PEM file path)")
		}
	}
	if c.Cloud.Timeout < 0 {
		bad("cloud.timeout", "%v: must be positive", c.Cloud.Timeout)
	}
	if *c.Cloud.Retries < 0 || *c.Cloud.Retries > 10 {
		bad("cloud.retries", "%d: want 0 to 10", *c.Cloud.Retries)
	}
	if c.Cloud.MaxConcurrent < 1 || c.Cloud.MaxConcurrent > 1024 {
		bad("cloud.max_concurrent", "%d: want 1 to 1024", c.Cloud.MaxConcurrent)
	}
	for i, n := range c.LAN.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad(fmt.Sprintf("lan.networks[%d]", i), "%q: not a CIDR network", n)
		}
	}
	if len(c.LAN.Networks) > 0 && c.LAN.Template != "" {
		bad("lan.template", "set lan.networks or lan.template, not both")
	}
	if c.TFTP.Port < 1 || c.TFTP.Port > 65535 {
		bad("tftp.port", "%d: want 1 to 65535", c.TFTP.Port)
	}
	if c.TFTP.MaxBlockSize < 512 || c.TFTP.MaxBlockSize > 65464 {
		bad("tftp.max_block_size", "%d: want 512 to 65464 (RFC 2348)", c.TFTP.MaxBlockSize)
	}
	if c.TFTP.MaxTransfers < 1 {
		bad("tftp.max_transfers", "%d: want at least 1", c.TFTP.MaxTransfers)
	}
	if c.TFTP.Timeout < 100*time.Millisecond || c.TFTP.Timeout > time.Minute {
		bad("tftp.timeout", "%v: want 100ms to 1m", c.TFTP.Timeout)
	}
	if c.TFTP.Retries < 1 || c.TFTP.Retries > 20 {
		bad("tftp.retries", "%d: want 1 to 20", c.TFTP.Retries)
	}
	if c.HTTPS.Port < 1 || c.HTTPS.Port > 65535 {
		bad("https.port", "%d: want 1 to 65535", c.HTTPS.Port)
	}
	if !strings.HasPrefix(c.HTTPS.PathPrefix, "/") || !strings.HasSuffix(c.HTTPS.PathPrefix, "/") {
		bad("https.path_prefix", "%q: must start and end with /", c.HTTPS.PathPrefix)
	}
	for i, p := range c.HTTPS.Certificates {
		if p.Cert == "" || p.Key == "" {
			bad(fmt.Sprintf("https.certificates[%d]", i), "want both cert and key")
		}
	}
	if c.HTTPS.NonceLifetime < 10*time.Second || c.HTTPS.NonceLifetime > 24*time.Hour {
		bad("https.nonce_lifetime", "%v: want 10s to 24h", c.HTTPS.NonceLifetime)
	}
	if c.Cache.MaxSize < 1<<20 {
		bad("cache.max_size", "%d bytes: want at least 1MiB", c.Cache.MaxSize)
	}
	if c.Cache.MaxStale < 0 {
		bad("cache.max_stale", "%v: must not be negative", c.Cache.MaxStale)
	}
	if c.Cache.NegativeTTL < 0 || c.Cache.NegativeTTL > time.Hour {
		bad("cache.negative_ttl", "%v: want 0 to 1h", c.Cache.NegativeTTL)
	}
	if c.Inventory.Refresh < time.Second {
		bad("inventory.refresh", "%v: want at least 1s", c.Inventory.Refresh)
	}
	if c.Policy.MaxDenials < 1 {
		bad("policy.max_denials", "%d: want at least 1", c.Policy.MaxDenials)
	}
	if c.Policy.DenialWindow <= 0 {
		bad("policy.denial_window", "%v: must be positive", c.Policy.DenialWindow)
	}
	if c.Policy.Cooldown <= 0 {
		bad("policy.cooldown", "%v: must be positive", c.Policy.Cooldown)
	}
	if c.Audit.Retention <= 0 {
		bad("audit.retention", "%v: must be positive", c.Audit.Retention)
	}
	if c.Audit.MaxRows < 1 {
		bad("audit.max_rows", "%d: want at least 1", c.Audit.MaxRows)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// LANNetworks returns lan.networks parsed (validated already).
func (c *Config) LANNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range c.LAN.Networks {
		p, _ := netip.ParsePrefix(n)
		out = append(out, p.Masked())
	}
	return out
}

func (c *Config) resolvePaths(dir string) {
	paths := []*string{&c.Cloud.CA, &c.Cloud.Cert, &c.Cloud.Key, &c.Cache.Path, &c.Cache.KeyFile, &c.Audit.Path}
	for i := range c.HTTPS.Certificates {
		paths = append(paths, &c.HTTPS.Certificates[i].Cert, &c.HTTPS.Certificates[i].Key)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
