package filename

import (
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"001565123456.cfg", "001565123456.cfg", true},
		{"/init.cfg", "init.cfg", true},
		{"firmware//sip.ld", "firmware/sip.ld", true},
		{"./a.cfg", "a.cfg", true},
		{"../etc/passwd", "", false},
		{"a/../../b", "", false},
		{"a/..", "", false},
		{".htaccess", "", false},
		{"a\\b", "", false},
		{"a\x00b", "", false},
		{"a\nb", "", false},
		{"\xff\xfe", "", false},
		{"", "", false},
		{"/", "", false},
		{strings.Repeat("x", 256), "", false},
	}
	for _, tt := range tests {
		got, err := Clean(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Clean(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"a.cfg", "../x", "/a//b", "a\x00", "./.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Clean(s)
		if err != nil {
			return
		}
		if got == "" || strings.HasPrefix(got, "/") || len(got) > MaxLen {
			t.Fatalf("Clean(%q) = %q", s, got)
		}
		for _, elem := range strings.Split(got, "/") {
			if elem == "" || strings.HasPrefix(elem, ".") {
				t.Fatalf("Clean(%q) = %q: element %q", s, got, elem)
			}
		}
		for _, c := range []byte(got) {
			if c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("Clean(%q) kept byte %#x", s, c)
			}
		}
	})
}
