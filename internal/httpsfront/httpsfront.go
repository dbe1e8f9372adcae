// Package httpsfront adapts HTTPS to the gateway for modern phones: GET and
// HEAD of files under a path prefix, identity from the path and the
// User-Agent, tenant credentials (Digest per RFC 7616, or Basic), the same
// policy and read path as TFTP. It listens on LAN addresses only, answers
// with fixed short bodies, and logs one line per request.
package httpsfront

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/provgate/provgate/internal/certfile"
	"github.com/provgate/provgate/internal/device"
	"github.com/provgate/provgate/internal/filename"
	"github.com/provgate/provgate/internal/gateway"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/policy"
)

// Opener is what the HTTPS front needs of the gateway.
type Opener interface {
	Open(ctx context.Context, req gateway.Request) (*gateway.File, error)
}

// Authorizer is what the HTTPS front needs of the policy.
type Authorizer interface {
	OnLAN(ip netip.Addr) bool
	Decide(req policy.Request) policy.Decision
	Refuse(req policy.Request, reason string)
	CloudDenied(req policy.Request, d policy.Decision, cloudReason string)
}

// Config tunes the HTTPS front.
type Config struct {
	PathPrefix    string               // files are served under it; default "/"
	Certificates  []*certfile.Reloader // RSA and/or ECDSA; the client's support picks
	NonceLifetime time.Duration        // Digest nonces expire after it
	OpenTimeout   time.Duration        // how long a request may wait for the cloud
	Logger        *slog.Logger
}

// Server serves HTTPS.
type Server struct {
	cfg    Config
	gw     Opener
	auth   Authorizer
	inv    func() *inventory.Index
	nonces *nonces
	log    *slog.Logger

	served, refused, rejectedConns atomic.Int64
}

// Stats counts what the front did.
type Stats struct {
	Served, Refused, RejectedConns int64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Served: s.served.Load(), Refused: s.refused.Load(), RejectedConns: s.rejectedConns.Load()}
}

// New returns an HTTPS front.
func New(gw Opener, auth Authorizer, inv func() *inventory.Index, cfg Config) (*Server, error) {
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("httpsfront: no certificate")
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = "/"
	}
	if !strings.HasPrefix(cfg.PathPrefix, "/") || !strings.HasSuffix(cfg.PathPrefix, "/") {
		return nil, fmt.Errorf("httpsfront: path prefix %q must start and end with /", cfg.PathPrefix)
	}
	if cfg.NonceLifetime <= 0 {
		cfg.NonceLifetime = 5 * time.Minute
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, gw: gw, auth: auth, inv: inv, nonces: newNonces(cfg.NonceLifetime), log: cfg.Logger}, nil
}

// TLSConfig offers TLS 1.2 and 1.3 (many phones lack 1.3) with the
// configured certificates, choosing per handshake what the phone supports.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			var first *tls.Certificate
			for _, r := range s.cfg.Certificates {
				c, err := r.Get()
				if err != nil {
					continue
				}
				if first == nil {
					first = c
				}
				if hello.SupportsCertificate(c) == nil {
					return c, nil
				}
			}
			if first == nil {
				return nil, errors.New("httpsfront: no usable certificate")
			}
			return first, nil
		},
	}
}

// Serve answers HTTPS on ln until ctx ends, then shuts down gracefully
// within grace.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      15 * time.Minute, // firmware to a slow phone
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(&lanOnly{Listener: ln, s: s}, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		err = nil
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// lanOnly closes accepted connections from outside the LAN: the socket
// filter normally stops them first; this holds when it could not.
type lanOnly struct {
	net.Listener
	s *Server
}

func (l *lanOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr == nil && l.s.auth.OnLAN(ap.Addr()) {
			return c, nil
		}
		l.s.rejectedConns.Add(1)
		l.s.log.Warn("connection from outside the LAN closed", "client", c.RemoteAddr().String())
		c.Close()
	}
}

// The bodies sent to clients: short and fixed; causes go to the log.
const (
	bodyUnauthorized = "authentication required\n"
	bodyForbidden    = "access denied\n"
	bodyNotFound     = "file not found\n"
	bodyMethod       = "method not allowed\n"
	bodyUnavailable  = "service unavailable, retry later\n"
	bodyBadRequest   = "bad request\n"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	client := ap.Addr().Unmap()
	rw := &statusWriter{ResponseWriter: w}
	var (
		req policy.Request
		dec policy.Decision
		out gateway.Outcome
	)
	defer func() {
		if !s.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		s.log.Info("request", "method", r.Method, "client", client.String(), "file", req.File, "mac", req.Identity.MAC,
			"tenant", dec.Tenant, "status", rw.status, "reason", dec.Reason, "outcome", out, "bytes", rw.bytes,
			"duration", time.Since(start))
	}()
	req = policy.Request{Transport: policy.HTTPS, Source: client, File: filename.Quote(r.URL.Path)}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		dec.Reason = policy.DenyBadRequest
		s.auth.Refuse(req, policy.DenyBadRequest)
		rw.Header().Set("Allow", "GET, HEAD")
		s.reply(rw, http.StatusMethodNotAllowed, bodyMethod)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.cfg.PathPrefix)
	name, err := filename.Clean(rest)
	if !ok || err != nil {
		dec.Reason = policy.DenyBadRequest
		s.auth.Refuse(req, policy.DenyBadRequest)
		s.reply(rw, http.StatusNotFound, bodyNotFound)
		return
	}
	req.File = name
	req.Identity = device.Identify(name, r.UserAgent())
	authTenant, attempted, stale := s.authenticate(r)
	req.AuthTenant, req.AuthFailed = authTenant, attempted && authTenant == "" && !stale
	dec = s.auth.Decide(req)
	if !dec.Allow {
		s.refused.Add(1)
		if len(dec.Challenge) > 0 {
			s.challenge(rw, dec.Challenge, stale)
			return
		}
		s.reply(rw, http.StatusForbidden, bodyForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.OpenTimeout)
	defer cancel()
	id := req.Identity
	f, err := s.gw.Open(ctx, gateway.Request{
		Name: name, MAC: id.MAC, Brand: id.Brand, Model: id.Model, Tenant: dec.Tenant, Transport: policy.HTTPS, Client: client,
	})
	if err != nil {
		out = gateway.OutcomeError
		var refused *gateway.RefusedError
		switch {
		case errors.As(err, &refused) && refused.Status == http.StatusNotFound:
			s.auth.CloudDenied(req, dec, refused.Reason)
			s.reply(rw, http.StatusNotFound, bodyNotFound)
		case errors.As(err, &refused):
			s.auth.CloudDenied(req, dec, refused.Reason)
			s.reply(rw, http.StatusForbidden, bodyForbidden)
		default:
			s.log.Warn("request failed", "file", name, "err", err)
			rw.Header().Set("Retry-After", "30")
			s.reply(rw, http.StatusServiceUnavailable, bodyUnavailable)
		}
		return
	}
	defer f.Close()
	out = f.Outcome
	h := rw.Header()
	h.Set("ETag", f.ETag)
	h.Set("Cache-Control", "no-cache") // phones revalidate; a match costs a 304
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, f.ETag) {
		rw.WriteHeader(http.StatusNotModified)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	rw.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(rw, f.ReadCloser); err != nil { // the cache's reader writes its chunks directly
		s.log.Warn("response cut short", "file", name, "err", err)
		return
	}
	s.served.Add(1)
}

func (s *Server) reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// challenge answers 401 with a challenge per scheme of each tenant whose
// credentials would let the request through: Digest with SHA-256 first,
// then MD5, then Basic.
func (s *Server) challenge(w http.ResponseWriter, tenants []*inventory.Tenant, stale bool) {
	h := w.Header()
	for _, t := range tenants {
		realm := quote(t.Realm)
		if slices.Contains(t.Options.AuthSchemes, "digest") {
			for _, alg := range []string{"SHA-256", "MD5"} {
				v := fmt.Sprintf(`Digest realm=%s, qop="auth", algorithm=%s, nonce=%s`, realm, alg, quote(s.nonces.issue()))
				if stale {
					v += ", stale=true"
				}
				h.Add("WWW-Authenticate", v)
			}
		}
		if slices.Contains(t.Options.AuthSchemes, "basic") {
			h.Add("WWW-Authenticate", fmt.Sprintf(`Basic realm=%s, charset="UTF-8"`, realm))
		}
	}
	s.reply(w, http.StatusUnauthorized, bodyUnauthorized)
}

// authenticate checks the request's credentials against the inventory.
// tenant is the tenant they are valid for ("" if none); attempted says
// credentials were offered; stale says a Digest answer was right but its
// nonce had expired (the phone should retry with a fresh one).
func (s *Server) authenticate(r *http.Request) (tenant string, attempted, stale bool) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return "", false, false
	}
	ix := s.inv()
	scheme, params, _ := strings.Cut(authz, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return "", true, false
		}
		for _, t := range sortedTenants(ix) {
			if !slices.Contains(t.Options.AuthSchemes, "basic") {
				continue
			}
			for _, c := range t.Credentials {
				if c.Username != user {
					continue
				}
				ha1, _ := originapi.HA1("SHA-256", user, t.Realm, pass)
				if subtle.ConstantTimeCompare([]byte(ha1), []byte(c.HA1SHA256)) == 1 {
					return t.ID, true, false
				}
			}
		}
		return "", true, false
	case "digest":
		p, err := parseAuthParams(params)
		if err != nil || p["qop"] != "auth" || p["userhash"] == "true" {
			return "", true, false
		}
		if p["uri"] != r.RequestURI {
			return "", true, false
		}
		for _, t := range sortedTenants(ix) {
			if t.Realm != p["realm"] || !slices.Contains(t.Options.AuthSchemes, "digest") {
				continue
			}
			for _, c := range t.Credentials {
				if c.Username != p["username"] {
					continue
				}
				ha1 := c.HA1MD5
				if strings.EqualFold(p["algorithm"], "SHA-256") {
					ha1 = c.HA1SHA256
				}
				want, err := digestResponse(p["algorithm"], ha1, p["nonce"], p["nc"], p["cnonce"], "auth", r.Method, p["uri"])
				if err != nil || subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(p["response"]))) != 1 {
					return "", true, false
				}
				switch err := s.nonces.use(p["nonce"], p["nc"]); {
				case errors.Is(err, errNonceStale):
					return "", true, true
				case err != nil:
					s.log.Warn("digest nonce refused", "client", r.RemoteAddr, "err", err)
					return "", true, false
				}
				return t.ID, true, false
			}
		}
		return "", true, false
	}
	return "", true, false
}

func sortedTenants(ix *inventory.Index) []*inventory.Tenant {
	out := make([]*inventory.Tenant, 0, len(ix.Tenants))
	for _, t := range ix.Tenants {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *inventory.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func quote(s string) string { return strconv.Quote(s) }

// etagMatch implements If-None-Match's weak comparison for a list.
func etagMatch(header, etag string) bool {
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// statusWriter records the status and bytes for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}
