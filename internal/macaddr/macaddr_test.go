package macaddr

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"001565AABBCC", "001565aabbcc", true},
		{"00:15:65:aa:bb:cc", "001565aabbcc", true},
		{"00-15-65-AA-BB-CC", "001565aabbcc", true},
		{"0015.65aa.bbcc", "001565aabbcc", true},
		{"00:15-65:aa:bb:cc", "", false},
		{"00:1565:aa:bb:cc", "", false},
		{"001565aabbc", "", false},
		{"001565aabbccd", "", false},
		{"00156gaabbcc", "", false},
		{"", "", false},
		{"00:15:65:aa:bb:cc:dd", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestColonsAndIsNormal(t *testing.T) {
	if got := Colons("001565aabbcc"); got != "00:15:65:aa:bb:cc" {
		t.Fatalf("Colons = %q", got)
	}
	if !IsNormal("001565aabbcc") || IsNormal("001565AABBCC") || IsNormal("0015") {
		t.Fatal("IsNormal misjudges")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"001565AABBCC", "00:15:65:aa:bb:cc", "0015.65aa.bbcc", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err == nil && !IsNormal(got) {
			t.Fatalf("Parse(%q) = %q, not normal", s, got)
		}
		if err == nil {
			if again, err := Parse(got); err != nil || again != got {
				t.Fatalf("not idempotent: %q -> %q", got, again)
			}
		}
	})
}
