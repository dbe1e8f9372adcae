package device

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Public examples of what phones ask for and send. Sources:
// ../shared/DEVICES.md (gathered from Wazo provd plugins, FusionPBX
// app/provision, Provisioner and Asterisk res_phoneprov) and the vendors'
// provisioning guides it cites: Poly UC Software admin guide, Yealink
// auto-provisioning guide, Cisco SPA/MPP and CUCM provisioning guides,
// Grandstream provisioning guide, snom provisioning wiki, Mitel/Aastra SIP
// admin guide, Fanvil, Panasonic, Avaya J100, Htek, Gigaset, ALE and
// AudioCodes admin guides.
var identifyTests = []struct {
	name, file, ua string
	want           Identity
}{
	// Polycom / Poly
	{"polycom master config", "000000000000.cfg", "", Identity{Brand: Polycom, Kind: KindConfigCommon}},
	{"polycom per-device", "0004f2abcdef.cfg", "", Identity{MAC: "0004f2abcdef", Kind: KindConfigDevice}},
	{"polycom phone overrides", "0004F2ABCDEF-phone.cfg", "", Identity{Brand: Polycom, MAC: "0004f2abcdef", Kind: KindConfigDevice}},
	{"polycom directory", "0004f2abcdef-directory.xml", "", Identity{Brand: Polycom, MAC: "0004f2abcdef", Kind: KindConfigDevice}},
	{"polycom firmware", "3111-48300-001.sip.ld", "", Identity{Brand: Polycom, Kind: KindFirmware}},
	{"polycom app log upload", "0004f2abcdef-app.log", "", Identity{Brand: Polycom, MAC: "0004f2abcdef", Kind: KindUpload}},
	{"polycom over https", "0004f2abcdef.cfg", "FileTransport PolycomVVX-VVX_411-UA/6.4.3.5018 Type/Application",
		Identity{Brand: Polycom, Model: "VVX_411", MAC: "0004f2abcdef", Kind: KindConfigDevice}},
	{"polycom soundpoint updater", "bootrom.ld", "FileTransport PolycomSoundPointIP-SPIP_650-UA/4.0.15.1009 Type/Updater",
		Identity{Brand: Polycom, Model: "SPIP_650", Kind: KindFirmware}},
	// Yealink
	{"yealink common boot", "y000000000000.boot", "", Identity{Brand: Yealink, Kind: KindConfigCommon}},
	{"yealink family config", "y000000000028.cfg", "", Identity{Brand: Yealink, Kind: KindConfigCommon}},
	{"yealink per-device boot", "001565123456.boot", "", Identity{Brand: Yealink, MAC: "001565123456", Kind: KindConfigDevice}},
	{"yealink firmware", "T46S-66.86.0.15.rom", "", Identity{Brand: Yealink, Kind: KindFirmware}},
	{"yealink local upload", "001565123456-local.cfg", "", Identity{Brand: Yealink, MAC: "001565123456", Kind: KindUpload}},
	{"yealink ua with mac", "001565123456.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56",
		Identity{Brand: Yealink, Model: "T46S", MAC: "001565123456", Kind: KindConfigDevice}},
	{"yealink ua without mac", "y000000000028.cfg", "Yealink SIP-T46S 66.86.0.15",
		Identity{Brand: Yealink, Model: "T46S", Kind: KindConfigCommon}},
	{"yealink dect", "805ec0000001.cfg", "Yealink W60B 77.85.0.25 80:5e:c0:00:00:01",
		Identity{Brand: Yealink, Model: "W60B", MAC: "805ec0000001", Kind: KindConfigDevice}},
	{"yealink ua without brand", "001565123456.cfg", "SIP-T54W 96.85.0.5 00:15:65:12:34:56",
		Identity{Brand: Yealink, Model: "T54W", MAC: "001565123456", Kind: KindConfigDevice}},
	{"yealink ua mac on a common file", "y000000000028.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56",
		Identity{Brand: Yealink, Model: "T46S", MAC: "001565123456", Kind: KindConfigCommon}},
	// Cisco CUCM, SPA, MPP, Linksys
	{"cisco cucm device", "SEP001B54AABB01.cnf.xml", "", Identity{Brand: Cisco, MAC: "001b54aabb01", Kind: KindConfigDevice}},
	{"cisco cucm ctl", "CTLSEP001B54AABB01.tlv", "", Identity{Brand: Cisco, MAC: "001b54aabb01", Kind: KindConfigDevice}},
	{"cisco cucm sip", "SIP001B54AABB01.cnf", "", Identity{Brand: Cisco, MAC: "001b54aabb01", Kind: KindConfigDevice}},
	{"cisco ata", "ATA001B54AABB01.cnf.xml", "", Identity{Brand: Cisco, MAC: "001b54aabb01", Kind: KindConfigDevice}},
	{"cisco default", "XMLDefault.cnf.xml", "", Identity{Brand: Cisco, Kind: KindConfigCommon}},
	{"cisco itl", "ITLFile.tlv", "", Identity{Brand: Cisco, Kind: KindConfigCommon}},
	{"cisco loads", "SIP88xx.14-2-1-0101-14.loads", "", Identity{Brand: Cisco, Kind: KindFirmware}},
	{"cisco spa model file", "spa504g.cfg", "", Identity{Brand: Cisco, Model: "SPA504G", Kind: KindConfigCommon}},
	{"cisco mpp model file", "CP-8841-3PCC.xml", "", Identity{Brand: Cisco, Model: "CP-8841", Kind: KindConfigCommon}},
	{"cisco spa ua: mac, then serial", "001b54aabb01.xml", "Cisco/SPA504G-7.6.2 (001B54AABB01)(CCQ1234A5BC)",
		Identity{Brand: Cisco, Model: "SPA504G", MAC: "001b54aabb01", Kind: KindConfigDevice}},
	{"cisco mpp ua", "00562b043615.xml", "Cisco-CP-8841-3PCC/11.3.1 (00562b043615)",
		Identity{Brand: Cisco, Model: "CP-8841", MAC: "00562b043615", Kind: KindConfigDevice}},
	{"linksys serial is not a mac", "init.cfg", "Linksys/SPA-942-6.1.5(a) (ABCDEF012345)",
		Identity{Brand: Cisco, Model: "SPA-942", Kind: KindConfigCommon}},
	// Grandstream
	{"grandstream per-device", "cfg000b82a1b2c3.xml", "", Identity{MAC: "000b82a1b2c3", Kind: KindConfigDevice}},
	{"grandstream binary config", "cfg000b82a1b2c3.bin", "", Identity{Brand: Grandstream, MAC: "000b82a1b2c3", Kind: KindConfigDevice}},
	{"grandstream plain", "cfg000b82a1b2c3", "", Identity{MAC: "000b82a1b2c3", Kind: KindConfigDevice}},
	{"grandstream model file", "cfggxp2170.xml", "", Identity{Brand: Grandstream, Model: "GXP2170", Kind: KindConfigCommon}},
	{"grandstream firmware", "gxp2170fw.bin", "", Identity{Brand: Grandstream, Model: "GXP2170", Kind: KindFirmware}},
	{"grandstream ua", "cfg000b82a1b2c3.xml", "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82a1b2c3",
		Identity{Brand: Grandstream, Model: "GXP2170", MAC: "000b82a1b2c3", Kind: KindConfigDevice}},
	// Snom
	{"snom model file", "snomD785.htm", "", Identity{Brand: Snom, Model: "D785", Kind: KindConfigCommon}},
	{"snom device file", "snomD785-000413778899.htm", "", Identity{Brand: Snom, Model: "D785", MAC: "000413778899", Kind: KindConfigDevice}},
	{"snom mac xml", "000413778899.xml", "", Identity{MAC: "000413778899", Kind: KindConfigDevice}},
	{"snom firmware", "snom760-8.7.5.35-SIP-r.bin", "", Identity{Brand: Snom, Model: "760", Kind: KindFirmware}},
	{"snom ua", "000413778899.xml", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.54.13 1.1.5-IFX-26.11.12 000413778899)",
		Identity{Brand: Snom, Model: "D785", MAC: "000413778899", Kind: KindConfigDevice}},
	// Mitel / Aastra
	{"mitel common", "aastra.cfg", "", Identity{Brand: Mitel, Kind: KindConfigCommon}},
	{"mitel device", "MN_00085d123456.cfg", "", Identity{Brand: Mitel, MAC: "00085d123456", Kind: KindConfigDevice}},
	{"mitel firmware", "6867i.st", "", Identity{Brand: Mitel, Model: "6867I", Kind: KindFirmware}},
	{"aastra ua", "00085D123456.cfg", "Aastra6867i MAC:00-08-5D-12-34-56 V:4.2.0.2023-SIP",
		Identity{Brand: Mitel, Model: "6867i", MAC: "00085d123456", Kind: KindConfigDevice}},
	{"mitel ua", "00085D123456.cfg", "Mitel6920 MAC:00-08-5D-12-34-56 V:5.1.0.2024-SIP",
		Identity{Brand: Mitel, Model: "6920", MAC: "00085d123456", Kind: KindConfigDevice}},
	// Fanvil
	{"fanvil model file", "F0V00X600000.cfg", "", Identity{Brand: Fanvil, Kind: KindConfigCommon}},
	{"fanvil firmware", "x6u-2.12.1.z", "", Identity{Brand: Fanvil, Kind: KindFirmware}},
	{"fanvil ua, model with a space", "0c383e123456.cfg", "Fanvil X6U Pro 2.12.1 0c383e123456",
		Identity{Brand: Fanvil, Model: "X6U Pro", MAC: "0c383e123456", Kind: KindConfigDevice}},
	// Panasonic
	{"panasonic device", "Config0080F0123456.cfg", "", Identity{Brand: Panasonic, MAC: "0080f0123456", Kind: KindConfigDevice}},
	{"panasonic common", "ConfigCommon.cfg", "", Identity{Brand: Panasonic, Kind: KindConfigCommon}},
	{"panasonic model", "ConfigKX-TGP600.cfg", "", Identity{Brand: Panasonic, Model: "KX-TGP600", Kind: KindConfigCommon}},
	{"panasonic ua", "Config0080F0123456.cfg", "Panasonic_KX-TGP600/06.001 (0080f0123456)",
		Identity{Brand: Panasonic, Model: "KX-TGP600", MAC: "0080f0123456", Kind: KindConfigDevice}},
	// Avaya
	{"avaya upgrade", "J100Supgrade.txt", "", Identity{Brand: Avaya, Kind: KindConfigCommon}},
	{"avaya settings", "46xxsettings.txt", "", Identity{Brand: Avaya, Kind: KindConfigCommon}},
	{"avaya device", "SIPC81FEA123456.cfg", "", Identity{Brand: Avaya, MAC: "c81fea123456", Kind: KindConfigDevice}},
	{"avaya firmware", "FW_S_J179_R4_0_10_3_2.bin", "", Identity{Brand: Avaya, Kind: KindFirmware}},
	{"avaya ua with control bytes", "c81fea123456.cfg", "\x01\x02Mozilla/5.0 AVAYA/J179-4.0.10.3.2 (MAC:c81fea123456)",
		Identity{Brand: Avaya, Model: "J179", MAC: "c81fea123456", Kind: KindConfigDevice}},
	// Htek
	{"htek device", "cfg001fc1123456.xml", "Htek UC924 2.0.4.4.37 00:1f:c1:12:34:56",
		Identity{Brand: Htek, Model: "UC924", MAC: "001fc1123456", Kind: KindConfigDevice}},
	// Gigaset
	{"gigaset device", "7C2F80123456.xml", "Gigaset N670 IP PRO/83.V2.39.0+build.6ba4b1d;7C2F80123456",
		Identity{Brand: Gigaset, Model: "N670 IP PRO", MAC: "7c2f80123456", Kind: KindConfigDevice}},
	{"gigaset without mac", "provisioning.xml", "Gigaset N670 IP PRO/83.V2.39.0",
		Identity{Brand: Gigaset, Model: "N670 IP PRO", Kind: KindConfigCommon}},
	// ALE
	{"ale device", "config.3c28a6123456.xml", "ALE H6 1.2.3 3c28a6123456",
		Identity{Brand: Alcatel, Model: "H6", MAC: "3c28a6123456", Kind: KindConfigDevice}},
	// AudioCodes
	{"audiocodes", "00908f123456.cfg", "AUDC-IPPhone/2.2.8.69 (445HD; 00908F123456)",
		Identity{Brand: AudioCodes, Model: "445HD", MAC: "00908f123456", Kind: KindConfigDevice}},
	// Obihai
	{"obihai", "obi202.xml", "OBIHAI/OBi202-3.2.2.5921", Identity{Brand: Obihai, Model: "OBi202", Kind: KindConfigCommon}},
	// Conflicts
	{"mac in path differs from user-agent", "001565123456.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:65:43:21",
		Identity{Brand: Yealink, Model: "T46S", MAC: "001565123456", Kind: KindConfigDevice, Conflict: ConflictMAC}},
	{"brand of path differs from user-agent", "SEP001565123456.cnf.xml", "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56",
		Identity{Brand: Cisco, Model: "T46S", MAC: "001565123456", Kind: KindConfigDevice, Conflict: ConflictBrand}},
	{"two macs in one name", "001565123456-0004f2abcdef.cfg", "",
		Identity{MAC: "001565123456", Kind: KindConfigDevice, Conflict: ConflictMAC}},
	// Unknowns stay empty
	{"unknown user-agent", "001565123456.cfg", "curl/8.0.1", Identity{MAC: "001565123456", Kind: KindConfigDevice}},
	{"nothing known", "readme", "", Identity{Kind: KindOther}},
	{"thirteen hex digits", "0015651234567.cfg", "", Identity{Kind: KindConfigCommon}},
}

func TestIdentify(t *testing.T) {
	for _, tt := range identifyTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Identify(tt.file, tt.ua); got != tt.want {
				t.Fatalf("Identify(%q, %q)\n got %+v\nwant %+v", tt.file, tt.ua, got, tt.want)
			}
		})
	}
}

func TestEveryBrandIsRecognised(t *testing.T) {
	seen := map[string]bool{}
	for _, tt := range identifyTests {
		seen[tt.want.Brand] = true
	}
	for _, b := range []string{Polycom, Yealink, Cisco, Grandstream, Snom, Mitel, Fanvil, Panasonic, Avaya, Htek, Gigaset, Alcatel, AudioCodes, Obihai} {
		if !seen[b] {
			t.Errorf("no example for brand %s", b)
		}
	}
}

func TestNormalizeModel(t *testing.T) {
	for _, m := range []string{"VVX_411", "vvx-411", "VVX411"} {
		if NormalizeModel(m) != "vvx411" {
			t.Errorf("NormalizeModel(%q) = %q", m, NormalizeModel(m))
		}
	}
}

func FuzzIdentify(f *testing.F) {
	for _, tt := range identifyTests {
		f.Add(tt.file, tt.ua)
	}
	f.Add(strings.Repeat("a1", 1<<19), strings.Repeat("Yealink SIP-T46S 1.2 ", 1<<15))
	f.Fuzz(func(t *testing.T, name, ua string) {
		id := Identify(name, ua)
		if id.MAC != "" && (len(id.MAC) != 12 || placeholder(id.MAC)) {
			t.Fatalf("MAC %q", id.MAC)
		}
		if len(id.Model) > MaxInput || !utf8.ValidString(id.Model) && utf8.ValidString(ua) {
			t.Fatalf("model %q", id.Model)
		}
		switch id.Kind {
		case KindConfigCommon, KindConfigDevice, KindFirmware, KindUpload, KindOther:
		default:
			t.Fatalf("kind %q", id.Kind)
		}
	})
}
