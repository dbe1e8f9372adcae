// Package macaddr normalises Ethernet MAC addresses to the form used across
// provgate: 12 lowercase hexadecimal digits, no separators.
package macaddr

import (
	"errors"
	"strings"
)

// ErrInvalid is returned for anything that is not a 48-bit MAC address.
var ErrInvalid = errors.New("macaddr: not a MAC address (want 12 hex digits, optionally separated by ':', '-' or '.')")

// Parse accepts a MAC as 12 hex digits, optionally grouped with ':' or '-'
// (pairs) or '.' (Cisco's groups of four), in any case, and returns it as
// 12 lowercase hex digits.
func Parse(s string) (string, error) {
	if len(s) > 17 {
		return "", ErrInvalid
	}
	var b strings.Builder
	b.Grow(12)
	var sep byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isHex(c):
			if b.Len() == 12 {
				return "", ErrInvalid
			}
			b.WriteByte(lower(c))
		case c == ':' || c == '-' || c == '.':
			if sep != 0 && c != sep {
				return "", ErrInvalid
			}
			sep = c
		default:
			return "", ErrInvalid
		}
	}
	if b.Len() != 12 || !separatorsWellPlaced(s, sep) {
		return "", ErrInvalid
	}
	return b.String(), nil
}

// separatorsWellPlaced checks aa:bb:cc:dd:ee:ff, aa-bb-…, aabb.ccdd.eeff or none.
func separatorsWellPlaced(s string, sep byte) bool {
	switch sep {
	case 0:
		return len(s) == 12
	case '.':
		return len(s) == 14 && s[4] == '.' && s[9] == '.'
	default:
		if len(s) != 17 {
			return false
		}
		for i := 2; i < 17; i += 3 {
			if s[i] != sep {
				return false
			}
		}
		return true
	}
}

// Colons formats a normalised MAC as aa:bb:cc:dd:ee:ff.
func Colons(mac string) string {
	if len(mac) != 12 {
		return mac
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(mac[i : i+2])
	}
	return b.String()
}

// IsNormal reports whether s is already 12 lowercase hex digits.
func IsNormal(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) || s[i] != lower(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}
