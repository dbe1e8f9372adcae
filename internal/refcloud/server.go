// Package refcloud is the reference provisioning cloud (provgate-origin): it
// serves a data folder over the origin API v1 (docs/origin-api.md) to
// gateways that present a client certificate of the cloud CA, and
// authorizes every request against the site's inventory.
package refcloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/provgate/provgate/internal/macaddr"
	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/pki"
)

// Config configures a reference cloud.
type Config struct {
	DataDir string        // holds inventory.yaml and files/
	Latency time.Duration // added before every response
	MaxAge  time.Duration // Cache-Control max-age of 200 answers
	Logger  *slog.Logger
}

// Stats counts requests that reached the handlers, by kind.
type Stats struct {
	Inventory int64 // GET/HEAD /v1/inventory
	Files     int64 // GET/HEAD /v1/files/…
}

// Server is the reference cloud.
type Server struct {
	cfg     Config
	log     *slog.Logger
	data    atomic.Pointer[Data]
	digests digestCache

	inventoryRequests atomic.Int64
	fileRequests      atomic.Int64
}

// New loads cfg.DataDir and returns a server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * time.Minute
	}
	s := &Server{cfg: cfg, log: cfg.Logger, digests: digestCache{m: map[digestKey][]byte{}}}
	d, err := LoadData(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.data.Store(d)
	return s, nil
}

// Reload reads the data folder again. On error the last good data stays in
// force and the error says why.
func (s *Server) Reload() error {
	d, err := LoadData(s.cfg.DataDir)
	if err != nil {
		s.log.Error("reload failed, keeping last good data", "err", err)
		return err
	}
	s.data.Store(d)
	s.log.Info("data reloaded", "sites", len(d.sites))
	return nil
}

// Stats returns request counts since start.
func (s *Server) Stats() Stats {
	return Stats{Inventory: s.inventoryRequests.Load(), Files: s.fileRequests.Load()}
}

// ServerTLS builds the cloud's TLS configuration from a PKI folder: TLS 1.3
// only, and a client certificate of the cloud CA required and verified.
func ServerTLS(dir string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, pki.CACert))
	if err != nil {
		return nil, fmt.Errorf("refcloud: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("refcloud: %s holds no certificate", pki.CACert)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.ServerCert), filepath.Join(dir, pki.ServerKey))
	if err != nil {
		return nil, fmt.Errorf("refcloud: server certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// Serve answers HTTPS on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(shutdownCtx)
	<-errc
	return err
}

// Handler returns the API v1 handler. It expects requests that came over
// mutual TLS; without a verified client certificate every request is 403.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(originapi.PathInventory, s.serveInventory)
	mux.HandleFunc(originapi.PathFiles, s.serveFile)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, originapi.ReasonNotFound, "no such API path")
	})
	return s.logged(s.methods(mux))
}

func (s *Server) methods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, originapi.ReasonMethod, "only GET and HEAD")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// delay waits the configured latency (or until the client gives up);
// handlers call it after counting the request, so a test can see a request
// has arrived while it is still being answered.
func (s *Server) delay(r *http.Request) bool {
	if s.cfg.Latency <= 0 {
		return true
	}
	t := time.NewTimer(s.cfg.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// siteOf returns the site named by the verified client certificate.
func (s *Server) siteOf(r *http.Request) (*Site, string) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, ""
	}
	id := r.TLS.VerifiedChains[0][0].Subject.CommonName
	return s.data.Load().sites[id], id
}

// begin counts a request, applies the latency and finds its site; a nil
// site means the request has been answered.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, counter *atomic.Int64) *Site {
	counter.Add(1)
	if !s.delay(r) {
		return nil
	}
	site, id := s.siteOf(r)
	if site == nil {
		writeError(w, http.StatusForbidden, originapi.ReasonUnknownSite, fmt.Sprintf("site %q is not in the inventory", id))
	}
	return site
}

func (s *Server) serveInventory(w http.ResponseWriter, r *http.Request) {
	site := s.begin(w, r, &s.inventoryRequests)
	if site == nil {
		return
	}
	sum := sha256.Sum256(site.inventory)
	s.writeHeaders(w, sum[:], "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(site.inventory))
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	site := s.begin(w, r, &s.fileRequests)
	if site == nil {
		return
	}
	name := strings.TrimPrefix(r.URL.Path, originapi.PathFiles)
	if err := validName(name); err != nil {
		writeError(w, http.StatusBadRequest, originapi.ReasonBadRequest, err.Error())
		return
	}
	req, err := parseIdentity(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, originapi.ReasonBadRequest, err.Error())
		return
	}
	tenant, dev, status, reason, msg := authorize(site, name, req)
	if status != http.StatusOK {
		writeError(w, status, reason, msg)
		return
	}
	f, err := s.resolve(site, tenant, dev, name, req)
	if err != nil {
		if errors.Is(err, errRender) {
			s.log.Error("template failed", "site", site.ID, "file", name, "err", err)
			writeError(w, http.StatusInternalServerError, originapi.ReasonRenderFailed, "template failed to render")
			return
		}
		writeError(w, http.StatusNotFound, originapi.ReasonNotFound, fmt.Sprintf("no file %q", name))
		return
	}
	defer f.Close()
	s.writeHeaders(w, f.digest, "")
	http.ServeContent(w, r, path.Base(name), f.modTime, f.content)
}

func (s *Server) writeHeaders(w http.ResponseWriter, sum []byte, contentType string) {
	h := w.Header()
	h.Set("ETag", originapi.ETag(sum))
	h.Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.MaxAge/time.Second)))
	h.Set(originapi.HeaderReprDigest, originapi.FormatReprDigest(sum))
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
}

// identity is what a gateway says about the requester.
type identity struct {
	mac, brand, model, tenant, transport, clientIP string
}

func parseIdentity(r *http.Request) (identity, error) {
	q := r.URL.Query()
	id := identity{
		brand:     q.Get(originapi.ParamBrand),
		model:     q.Get(originapi.ParamModel),
		tenant:    q.Get(originapi.ParamTenant),
		transport: q.Get(originapi.ParamTransport),
		clientIP:  q.Get(originapi.ParamClientIP),
	}
	if m := q.Get(originapi.ParamMAC); m != "" {
		mac, err := macaddr.Parse(m)
		if err != nil {
			return id, fmt.Errorf("parameter mac: %q is not a MAC address", m)
		}
		id.mac = mac
	}
	switch id.transport {
	case "", originapi.TransportTFTP, originapi.TransportHTTPS:
	default:
		return id, fmt.Errorf("parameter transport: %q is not tftp or https", id.transport)
	}
	if id.clientIP != "" {
		if _, err := netip.ParseAddr(id.clientIP); err != nil {
			return id, fmt.Errorf("parameter client_ip: %q is not an IP address", id.clientIP)
		}
	}
	return id, nil
}

// authorize applies the cloud's checks in the documented order: tenant,
// device (unknown, other tenant, brand, model), then the file name naming
// another device.
func authorize(site *Site, name string, req identity) (tenant string, dev *Device, status int, reason, msg string) {
	if req.tenant != "" && site.Tenants[req.tenant] == nil {
		return "", nil, http.StatusForbidden, originapi.ReasonUnknownTenant, fmt.Sprintf("tenant %q is not a tenant of site %q", req.tenant, site.ID)
	}
	tenant = req.tenant
	if req.mac != "" {
		dev = site.Devices[req.mac]
		switch {
		case dev == nil:
			return "", nil, http.StatusForbidden, originapi.ReasonUnknownMAC, fmt.Sprintf("device %s is not in the inventory", req.mac)
		case tenant != "" && dev.Tenant != tenant:
			return "", nil, http.StatusForbidden, originapi.ReasonTenantMismatch, fmt.Sprintf("device %s does not belong to tenant %q", req.mac, tenant)
		case req.brand != "" && req.brand != dev.Brand:
			return "", nil, http.StatusForbidden, originapi.ReasonBrandMismatch, fmt.Sprintf("device %s is not a %s", req.mac, req.brand)
		case req.model != "" && !strings.EqualFold(req.model, dev.Model):
			return "", nil, http.StatusForbidden, originapi.ReasonModelMismatch, fmt.Sprintf("device %s is not a %s", req.mac, req.model)
		}
		tenant = dev.Tenant
	}
	if other := namedDevice(site, name); other != "" && other != req.mac {
		return "", nil, http.StatusForbidden, originapi.ReasonMACMismatch, fmt.Sprintf("file %q belongs to another device", name)
	}
	return tenant, dev, http.StatusOK, "", ""
}

// namedDevice returns the MAC of a device of the site that the file name
// contains (as 12 hex digits in any case), or "".
func namedDevice(site *Site, name string) string {
	lower := strings.ToLower(name)
	for i := 0; i+12 <= len(lower); i++ {
		if macaddr.IsNormal(lower[i:i+12]) && site.Devices[lower[i:i+12]] != nil {
			return lower[i : i+12]
		}
	}
	return ""
}

// validName accepts relative, clean, printable names of up to 255 bytes.
func validName(name string) error {
	switch {
	case name == "" || len(name) > 255:
		return errors.New("file name must be 1 to 255 bytes")
	case !utf8.ValidString(name):
		return errors.New("file name is not UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == '{' || r == '}' }):
		return errors.New("file name has a control character, backslash or brace")
	case path.Clean(name) != name || strings.HasPrefix(name, "/"):
		return errors.New("file name is not a clean relative path")
	case strings.HasSuffix(name, ".tmpl"):
		return errors.New("templates are rendered, not served")
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return errors.New("file name has a dot-file or '..' element")
		}
	}
	return nil
}

// errRender marks a template that failed to render.
var errRender = errors.New("refcloud: render")

type servedFile struct {
	content io.ReadSeeker
	modTime time.Time
	digest  []byte
	close   func() error
}

func (f *servedFile) Close() error {
	if f.close != nil {
		return f.close()
	}
	return nil
}

// resolve finds name for the tenant, then in common/: the file itself, then
// name.tmpl, then the per-device pattern with {mac} or {MAC} in place of
// the device's MAC.
func (s *Server) resolve(site *Site, tenant string, dev *Device, name string, req identity) (*servedFile, error) {
	var dirs []string
	if tenant != "" {
		dirs = append(dirs, tenant)
	}
	dirs = append(dirs, "common")
	candidates := []string{name, name + ".tmpl"}
	if dev != nil {
		for _, p := range [...]struct{ placeholder, form string }{{"{mac}", dev.MAC}, {"{MAC}", strings.ToUpper(dev.MAC)}} {
			if strings.Contains(name, p.form) {
				candidates = append(candidates, strings.ReplaceAll(name, p.form, p.placeholder)+".tmpl")
			}
		}
	}
	for _, dir := range dirs {
		root, err := os.OpenRoot(filepath.Join(s.cfg.DataDir, "files", dir))
		if err != nil {
			continue
		}
		for _, c := range candidates {
			f, err := root.Open(c)
			if err != nil {
				continue
			}
			fi, err := f.Stat()
			if err != nil || !fi.Mode().IsRegular() {
				f.Close()
				continue
			}
			root.Close()
			if strings.HasSuffix(c, ".tmpl") {
				defer f.Close()
				return s.render(f, site, tenant, dev, name, req)
			}
			sum, err := s.digests.get(f, fi)
			if err != nil {
				f.Close()
				return nil, err
			}
			return &servedFile{content: f, modTime: fi.ModTime(), digest: sum, close: f.Close}, nil
		}
		root.Close()
	}
	return nil, os.ErrNotExist
}

// TemplateData is what a .tmpl file sees.
type TemplateData struct {
	Site      string
	Tenant    *Tenant
	Device    *Device // nil for requests that name no device
	MAC       string  // the device's MAC, 12 lowercase hex digits, or ""
	File      string  // the name the phone asked for
	Transport string
	ClientIP  string
}

var templateFuncs = template.FuncMap{
	"upper":  strings.ToUpper,
	"lower":  strings.ToLower,
	"colons": macaddr.Colons,
}

func (s *Server) render(f *os.File, site *Site, tenant string, dev *Device, name string, req identity) (*servedFile, error) {
	src, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", errRender, err)
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRender, err)
	}
	data := TemplateData{Site: site.ID, Tenant: site.Tenants[tenant], Device: dev, File: name, Transport: req.transport, ClientIP: req.clientIP}
	if data.Tenant == nil {
		data.Tenant = &Tenant{}
	}
	if dev != nil {
		data.MAC = dev.MAC
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("%w: %v", errRender, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return &servedFile{content: bytes.NewReader(buf.Bytes()), digest: sum[:]}, nil
}

// digestCache remembers the SHA-256 of static files by path, size and
// modification time, so a large firmware image is hashed once, streaming.
type digestCache struct {
	mu sync.Mutex
	m  map[digestKey][]byte
}

type digestKey struct {
	name  string
	size  int64
	mtime int64
}

const maxDigests = 4096

func (c *digestCache) get(f *os.File, fi os.FileInfo) ([]byte, error) {
	key := digestKey{f.Name(), fi.Size(), fi.ModTime().UnixNano()}
	c.mu.Lock()
	sum, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return sum, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	sum = h.Sum(nil)
	c.mu.Lock()
	if len(c.m) >= maxDigests {
		clear(c.m)
	}
	c.m[key] = sum
	c.mu.Unlock()
	return sum, nil
}

func writeError(w http.ResponseWriter, status int, reason, msg string) {
	if lw, ok := w.(*logWriter); ok {
		lw.reason = reason
	}
	h := w.Header()
	h.Del("ETag")
	h.Del(originapi.HeaderReprDigest)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(originapi.Error{Reason: reason, Message: msg})
}

// logWriter records what a handler answered, for the request log line.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	reason string
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &logWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		_, site := s.siteOf(r)
		s.log.Info("request", "site", site, "method", r.Method, "path", r.URL.Path,
			"mac", r.URL.Query().Get(originapi.ParamMAC), "status", lw.status, "reason", lw.reason,
			"bytes", lw.bytes, "duration", time.Since(start))
	})
}
