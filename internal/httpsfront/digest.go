package httpsfront

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP Digest authentication (RFC 7616), server side, with qop=auth and the
// MD5 and SHA-256 algorithms. No well-kept Go library implements the server
// side with expiring, replay-proof nonces and SHA-256, so this file does,
// against the RFC's test vectors.

// digestResponse computes the expected "response" for qop=auth from HA1.
func digestResponse(algorithm, ha1, nonce, nc, cnonce, qop, method, uri string) (string, error) {
	var h func() hash.Hash
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		h = md5.New
	case "SHA-256":
		h = sha256.New
	default:
		return "", fmt.Errorf("unsupported algorithm %q", algorithm)
	}
	sum := func(s string) string {
		x := h()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha2 := sum(method + ":" + uri)
	return sum(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2), nil
}

// parseAuthParams parses the comma-separated auth-params of an
// Authorization header (after the scheme): token=token or token="quoted".
func parseAuthParams(s string) (map[string]string, error) {
	params := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return params, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("malformed auth-param")
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated quoted string")
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("duplicate auth-param %q", key)
		}
		params[key] = val
	}
}

// nonces issues server nonces that carry their issue time and a MAC, so
// they need no storage until used; used ones remember their highest nonce
// count, so a replayed request is refused.
type nonces struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time

	mu   sync.Mutex
	seen map[string]seenNonce
}

type seenNonce struct {
	nc      uint64
	expires time.Time
}

func newNonces(lifetime time.Duration) *nonces {
	key := make([]byte, 32)
	rand.Read(key)
	return &nonces{key: key, lifetime: lifetime, now: time.Now, seen: map[string]seenNonce{}}
}

const nonceRaw = 8 + 8 + 16 // issue time, random, MAC

func (n *nonces) issue() string {
	b := make([]byte, 16, nonceRaw)
	binary.BigEndian.PutUint64(b, uint64(n.now().UnixNano()))
	rand.Read(b[8:16])
	m := hmac.New(sha256.New, n.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(b)[:nonceRaw])
}

var (
	errNonceInvalid = errors.New("nonce not issued here")
	errNonceStale   = errors.New("nonce expired")
	errNonceReplay  = errors.New("nonce count replayed")
)

// use checks a nonce with its count: issued here, not expired, and a count
// higher than any seen with it before.
func (n *nonces) use(nonce, ncHex string) error {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceRaw {
		return errNonceInvalid
	}
	m := hmac.New(sha256.New, n.key)
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return errNonceInvalid
	}
	now := n.now()
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	if now.Sub(issued) > n.lifetime {
		return errNonceStale
	}
	nc, err := strconv.ParseUint(ncHex, 16, 64)
	if err != nil || len(ncHex) != 8 {
		return errNonceInvalid
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.seen) > 100_000 {
		for k, v := range n.seen {
			if now.After(v.expires) {
				delete(n.seen, k)
			}
		}
	}
	if s, ok := n.seen[nonce]; ok && nc <= s.nc {
		return errNonceReplay
	}
	n.seen[nonce] = seenNonce{nc: nc, expires: issued.Add(n.lifetime)}
	return nil
}
