// Package filename normalises the file names phones ask for, the same way
// for every front end: whatever it refuses never reaches the cache or the
// cloud.
package filename

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds a requested name (bytes).
const MaxLen = 255

// Clean normalises a requested file name: a leading '/' is dropped and the
// path cleaned. It refuses empty or over-long names, names that are not
// UTF-8, control bytes, backslashes, and any '..' or dot-file element.
func Clean(name string) (string, error) {
	switch {
	case len(name) > MaxLen:
		return "", fmt.Errorf("name longer than %d bytes", MaxLen)
	case !utf8.ValidString(name):
		return "", errors.New("name is not UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return "", errors.New("name has a control byte or backslash")
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." || strings.HasPrefix(elem, ".") && elem != "." {
			return "", errors.New("name has a '..' or dot-file element")
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" {
		return "", errors.New("empty name")
	}
	return clean, nil
}

// Quote renders a requested name for a log line: quoted, so control bytes
// cannot forge lines, and cut at 300 bytes.
func Quote(s string) string {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strconv.Quote(s)
}
