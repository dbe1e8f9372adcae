// Package certfile serves a TLS certificate and key from files and picks up
// new files without a restart: each handshake checks the files' size and
// modification time and reloads them when they changed.
package certfile

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Reloader holds one certificate and key pair.
type Reloader struct {
	certFile, keyFile string

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

// New loads the pair once, so a bad path fails at start.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.Get(); err != nil {
		return nil, err
	}
	return r, nil
}

// Get returns the current pair, reloading it if the files changed. While a
// replacement is half-written (the pair does not load), the last good pair
// is kept.
func (r *Reloader) Get() (*tls.Certificate, error) {
	stamp, err := fileStamp(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("certfile: %w", err)
	}
	if r.cert != nil && stamp == r.stamp {
		return r.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("certfile: %s: %w", r.certFile, err)
	}
	r.cert, r.stamp = &pair, stamp
	return r.cert, nil
}

func fileStamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}
