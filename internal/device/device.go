// Package device works out who is asking from what a phone sends: the file
// name it requests and, over HTTPS, its User-Agent. Everything here is a
// pure function of its input, bounded in work, and never guesses: what it
// cannot tell stays empty.
package device

import (
	"path"
	"slices"
	"strings"
	"sync"
)

// Kind is the kind of file a phone asks for.
type Kind string

// Kinds of file.
const (
	KindConfigCommon Kind = "config-common"
	KindConfigDevice Kind = "config-device"
	KindFirmware     Kind = "firmware"
	KindUpload       Kind = "upload"
	KindOther        Kind = "other"
)

// Brand ids, canonical and lowercase.
const (
	Polycom     = "polycom"
	Yealink     = "yealink"
	Cisco       = "cisco" // and Linksys
	Grandstream = "grandstream"
	Snom        = "snom"
	Mitel       = "mitel" // and Aastra
	Fanvil      = "fanvil"
	Panasonic   = "panasonic"
	Avaya       = "avaya"
	Htek        = "htek"
	Gigaset     = "gigaset"
	Alcatel     = "alcatel" // ALE
	AudioCodes  = "audiocodes"
	Obihai      = "obihai"
)

// Identity is what a request reveals about the device behind it.
type Identity struct {
	Brand    string `json:"brand"`
	Model    string `json:"model"`
	MAC      string `json:"mac"` // 12 lowercase hex digits, or ""
	Kind     Kind   `json:"kind"`
	Conflict string `json:"conflict,omitempty"`
}

// Conflicts.
const (
	ConflictMAC   = "mac"   // the path and the User-Agent (or two parts of the path) name different MACs
	ConflictBrand = "brand" // the User-Agent's brand is not the file name pattern's
)

// MaxInput bounds the bytes of a name or User-Agent that are looked at.
const MaxInput = 512

// Identify derives an identity from a requested file name and a
// User-Agent (empty over TFTP). When both name a MAC or a brand and they
// differ, Conflict says which; the path's values are reported.
func Identify(name, userAgent string) Identity {
	key := name + "\x00" + userAgent
	if len(key) <= 2*MaxInput {
		if id, ok := memo.get(key); ok {
			return id
		}
	}
	id := identify(name, userAgent)
	if len(key) <= 2*MaxInput {
		memo.put(key, id)
	}
	return id
}

func identify(name, userAgent string) Identity {
	n := parseName(bound(name))
	u := parseUserAgent(bound(userAgent))
	id := Identity{MAC: n.mac, Brand: n.brand, Model: n.model, Kind: n.kind, Conflict: n.conflict}
	switch {
	case id.MAC == "": // a common file asked by a phone whose User-Agent names it
		id.MAC = u.mac
	case u.mac != "" && u.mac != id.MAC:
		id.Conflict = ConflictMAC
	}
	switch {
	case id.Brand == "":
		id.Brand = u.brand
	case u.brand != "" && u.brand != id.Brand && id.Conflict == "":
		id.Conflict = ConflictBrand
	}
	if u.model != "" {
		id.Model = u.model
	}
	return id
}

// memo remembers recent answers: phones ask for the same few names with the
// same User-Agent again and again, and the rules are many regular
// expressions. Identify stays a pure function of its input.
var memo = &memoTable{m: map[string]Identity{}}

type memoTable struct {
	mu sync.Mutex
	m  map[string]Identity
}

const memoSize = 8192

func (t *memoTable) get(key string) (Identity, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.m[key]
	return id, ok
}

func (t *memoTable) put(key string, id Identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= memoSize {
		clear(t.m)
	}
	t.m[key] = id
}

// NormalizeModel makes models comparable: lowercase letters and digits
// only, so "VVX_411", "vvx-411" and "VVX411" are one model.
func NormalizeModel(m string) string {
	var b strings.Builder
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	return b.String()
}

// bound cuts input to MaxInput bytes and blanks control bytes, which some
// phones send in their User-Agent.
func bound(s string) string {
	if len(s) > MaxInput {
		s = s[:MaxInput]
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// macRuns finds the 12-hex-digit runs of s that stand alone (not part of a
// longer run of hex digits). Placeholders of common files are skipped.
func macRuns(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		if !isHex(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isHex(s[j]) {
			j++
		}
		if j-i == 12 && !placeholder(s[i:j]) {
			out = append(out, strings.ToLower(s[i:j]))
		}
		i = j
	}
	return out
}

// placeholder reports MAC-shaped names of common files: ten leading zeros
// cover Polycom's 000000000000 and Yealink's y0000000000NN.
func placeholder(run string) bool { return strings.HasPrefix(run, "0000000000") }

// MACFromName returns the device MAC a file name carries, or "".
func MACFromName(name string) string { return parseName(bound(name)).mac }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasExt(base string, exts ...string) bool { return slices.Contains(exts, path.Ext(base)) }
