// Package device works out who is asking from what a phone sends: the file
// name it requests and, over HTTPS, its User-Agent. Everything here is a
// pure function of its input, bounded in work, and never guesses: what it
// cannot tell stays empty.
package device

import (
	"path"
	"strings"
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

// Identity is what a request reveals about the device behind it.
type Identity struct {
	Brand    string `json:"brand"`
	Model    string `json:"model"`
	MAC      string `json:"mac"` // 12 lowercase hex digits, or ""
	Kind     Kind   `json:"kind"`
	Conflict string `json:"conflict,omitempty"`
}

// MaxInput bounds the bytes of a name or User-Agent that are looked at.
const MaxInput = 1024

// Identify derives an identity from a requested file name and a
// User-Agent (empty over TFTP).
func Identify(name, userAgent string) Identity {
	if len(name) > MaxInput {
		name = name[:MaxInput]
	}
	id := Identity{MAC: MACFromName(name)}
	id.Kind = kindOf(name, id.MAC != "")
	return id
}

// MACFromName finds a device MAC in a file name: 12 hex digits standing
// alone (`001565123456.cfg`, `cfg000b82a1b2c3.xml`, `SEP001B54AABB01…`) or
// after Cisco's `ATA` prefix. Names that merely look like MACs, such as
// Polycom's `000000000000.cfg` and Yealink's `y0000000000NN.cfg`, are not.
func MACFromName(name string) string {
	base := path.Base(name)
	for i := 0; i < len(base); {
		if !isHex(base[i]) {
			i++
			continue
		}
		j := i
		for j < len(base) && isHex(base[j]) {
			j++
		}
		run := base[i:j]
		if len(run) == 13 && strings.HasSuffix(strings.ToUpper(base[:i+1]), "ATA") {
			run = run[1:]
		}
		if len(run) == 12 && !placeholder(run) {
			return strings.ToLower(run)
		}
		i = j
	}
	return ""
}

// placeholder reports MAC-shaped names of common files: ten leading zeros
// cover 000000000000 and Yealink's y0000000000NN.
func placeholder(run string) bool {
	return strings.HasPrefix(run, "0000000000")
}

var firmwareExt = map[string]bool{
	".ld": true, ".rom": true, ".bin": true, ".loads": true, ".sbn": true, ".z": true,
	".st": true, ".img": true, ".zip": true, ".tar": true,
}

var configExt = map[string]bool{
	".cfg": true, ".xml": true, ".boot": true, ".cnf": true, ".htm": true, ".ver": true,
	".txt": true, ".tlv": true, ".json": true,
}

func kindOf(name string, hasMAC bool) Kind {
	ext := strings.ToLower(path.Ext(name))
	switch {
	case firmwareExt[ext] && !hasMAC:
		return KindFirmware
	case hasMAC:
		return KindConfigDevice
	case configExt[ext]:
		return KindConfigCommon
	}
	return KindOther
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
