package device

import (
	"strings"
	"testing"
)

// File names from DEVICES.md (gathered from Wazo provd plugins, FusionPBX
// app/provision and vendor admin guides).
func TestMACFromName(t *testing.T) {
	tests := []struct{ name, mac string }{
		{"001565123456.cfg", "001565123456"},
		{"0004F2ABCDEF-phone.cfg", "0004f2abcdef"},
		{"SEP001B54AABB01.cnf.xml", "001b54aabb01"},
		{"CTLSEP001B54AABB01.tlv", "001b54aabb01"},
		{"cfg000b82a1b2c3.xml", "000b82a1b2c3"},
		{"cfg000b82a1b2c3", "000b82a1b2c3"},
		{"ATA001B54AABB01.cnf.xml", "001b54aabb01"},
		{"MN_001565123456.cfg", "001565123456"},
		{"snomD785-000413778899.htm", "000413778899"},
		{"000000000000.cfg", ""},
		{"y000000000000.boot", ""},
		{"y000000000025.cfg", ""},
		{"sip.ld", ""},
		{"0015651234567.cfg", ""}, // 13 digits: not a MAC
	}
	for _, tt := range tests {
		if got := MACFromName(tt.name); got != tt.mac {
			t.Errorf("MACFromName(%q) = %q, want %q", tt.name, got, tt.mac)
		}
	}
}

func TestKinds(t *testing.T) {
	for name, kind := range map[string]Kind{
		"001565123456.cfg": KindConfigDevice, "000000000000.cfg": KindConfigCommon,
		"sip.ld": KindFirmware, "T46S-66.86.0.15.rom": KindFirmware, "notes": KindOther,
	} {
		if got := Identify(name, "").Kind; got != kind {
			t.Errorf("%s: %s, want %s", name, got, kind)
		}
	}
}

func FuzzIdentify(f *testing.F) {
	f.Add("SEP001B54AABB01.cnf.xml", "")
	f.Add(strings.Repeat("a1", 5000), "\x00\x01")
	f.Fuzz(func(t *testing.T, name, ua string) {
		id := Identify(name, ua)
		if id.MAC != "" && len(id.MAC) != 12 {
			t.Fatalf("MAC %q", id.MAC)
		}
	})
}
