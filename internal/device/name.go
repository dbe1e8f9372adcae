package device

import (
	"path"
	"regexp"
	"strings"
)

type nameInfo struct {
	mac, brand, model, conflict string
	kind                        Kind
}

// A name rule: a pattern over the lowercased base name, the brand it
// reveals (or ""), its kind, and which group holds the model (0: none).
// The MAC, if any, is found separately. Rules are tried in order.
type nameRule struct {
	re    *regexp.Regexp
	brand string
	kind  Kind
	model int
}

const mac = `[0-9a-f]{12}`

var nameRules = []nameRule{
	// Cisco CUCM, SPA/ATA and MPP.
	{regexp.MustCompile(`^(?:ctl|itl)?sep` + mac + `\.(?:cnf\.xml|tlv)$`), Cisco, KindConfigDevice, 0},
	{regexp.MustCompile(`^sip` + mac + `\.cnf$`), Cisco, KindConfigDevice, 0},
	{regexp.MustCompile(`^ata` + mac + `\.cnf\.xml$`), Cisco, KindConfigDevice, 0},
	{regexp.MustCompile(`^(?:xmldefault\.cnf\.xml|sipdefault\.cnf|itlfile\.tlv|ctlfile\.tlv)$`), Cisco, KindConfigCommon, 0},
	{regexp.MustCompile(`^(spa\d{3,4}[a-z]*)\.cfg$`), Cisco, KindConfigCommon, 1},
	{regexp.MustCompile(`^((?:cp-)?\d{4})-3pcc\.xml$`), Cisco, KindConfigCommon, 1},
	{regexp.MustCompile(`\.loads$`), Cisco, KindFirmware, 0},
	// Polycom.
	{regexp.MustCompile(`^` + mac + `-(?:app|boot)\.log$`), Polycom, KindUpload, 0},
	{regexp.MustCompile(`^` + mac + `-calls\.xml$`), Polycom, KindUpload, 0},
	{regexp.MustCompile(`^` + mac + `-(?:phone|web|license)\.cfg$`), Polycom, KindConfigDevice, 0},
	{regexp.MustCompile(`^` + mac + `-directory\.xml$`), Polycom, KindConfigDevice, 0},
	{regexp.MustCompile(`^0{12}(?:-license)?\.cfg$|^sip\.ver$`), Polycom, KindConfigCommon, 0},
	{regexp.MustCompile(`(?:^|\.)sip\.ld$|^bootrom\.ld$`), Polycom, KindFirmware, 0},
	// Yealink.
	{regexp.MustCompile(`^y0{12}\.boot$|^y0{10}\d\d\.cfg$`), Yealink, KindConfigCommon, 0},
	{regexp.MustCompile(`^` + mac + `\.boot$`), Yealink, KindConfigDevice, 0},
	{regexp.MustCompile(`^` + mac + `-(?:local\.cfg|contact\.xml)$`), Yealink, KindUpload, 0},
	{regexp.MustCompile(`\.rom$`), Yealink, KindFirmware, 0},
	// Grandstream and Htek share cfg<mac> and cfg<mac>.xml; .bin is Grandstream's.
	{regexp.MustCompile(`^cfg` + mac + `\.bin$`), Grandstream, KindConfigDevice, 0},
	{regexp.MustCompile(`^cfg` + mac + `(?:\.xml)?$`), "", KindConfigDevice, 0},
	{regexp.MustCompile(`^([a-z]{2,4}\d{3,4}[a-z]?)fw\.bin$`), Grandstream, KindFirmware, 1},
	{regexp.MustCompile(`^cfg([a-z]{2,4}\d{3,4}[a-z]?)\.xml$`), Grandstream, KindConfigCommon, 1},
	// Snom.
	{regexp.MustCompile(`^snom([a-z]?\d{3,4}[a-z]?)-` + mac + `\.htm$`), Snom, KindConfigDevice, 1},
	{regexp.MustCompile(`^snom([a-z]?\d{3,4}[a-z]?)-[\d.]+-sip-[a-z]+\.bin$`), Snom, KindFirmware, 1},
	{regexp.MustCompile(`^snom([a-z]?\d{3,4}[a-z]?)\.htm$`), Snom, KindConfigCommon, 1},
	// Mitel / Aastra.
	{regexp.MustCompile(`^mn_` + mac + `\.cfg$`), Mitel, KindConfigDevice, 0},
	{regexp.MustCompile(`^(?:aastra\.cfg|mn_generic\.cfg)$`), Mitel, KindConfigCommon, 0},
	{regexp.MustCompile(`^(\d{4}[a-z]?)\.st$`), Mitel, KindFirmware, 1},
	// Fanvil.
	{regexp.MustCompile(`^f0v[0-9a-z]{9}\.cfg$`), Fanvil, KindConfigCommon, 0},
	{regexp.MustCompile(`\.z$`), Fanvil, KindFirmware, 0},
	// Panasonic.
	{regexp.MustCompile(`^config` + mac + `\.cfg$`), Panasonic, KindConfigDevice, 0},
	{regexp.MustCompile(`^configcommon\.cfg$`), Panasonic, KindConfigCommon, 0},
	{regexp.MustCompile(`^config(kx-[a-z0-9]+)\.cfg$`), Panasonic, KindConfigCommon, 1},
	// Avaya.
	{regexp.MustCompile(`^sip` + mac + `\.cfg$`), Avaya, KindConfigDevice, 0},
	{regexp.MustCompile(`^(?:j100supgrade\.txt|46xxsettings\.txt)$`), Avaya, KindConfigCommon, 0},
	{regexp.MustCompile(`^fw_.*\.bin$`), Avaya, KindFirmware, 0},
	// ALE.
	{regexp.MustCompile(`^config\.` + mac + `\.xml$`), Alcatel, KindConfigDevice, 0},
}

var (
	uploadExt   = []string{".log"}
	firmwareExt = []string{".ld", ".rom", ".bin", ".loads", ".sbn", ".z", ".st", ".img", ".zip", ".tar", ".tgz"}
	configExt   = []string{".cfg", ".xml", ".boot", ".cnf", ".htm", ".ver", ".txt", ".tlv", ".json", ".ini", ".conf"}
)

func parseName(name string) nameInfo {
	base := path.Base(strings.TrimRight(name, "/"))
	lower := strings.ToLower(base)
	var n nameInfo
	macs := macRuns(lower)
	// Cisco's ATA<MAC> glues a hex 'A' to the MAC: a 13-digit run.
	if len(macs) == 0 && strings.HasPrefix(lower, "ata") && len(lower) >= 15 {
		macs = macRuns(lower[3:])
	}
	if len(macs) > 0 {
		n.mac = macs[0]
		for _, m := range macs[1:] {
			if m != n.mac {
				n.conflict = ConflictMAC
			}
		}
	}
	for _, r := range nameRules {
		m := r.re.FindStringSubmatch(lower)
		if m == nil {
			continue
		}
		n.brand, n.kind = r.brand, r.kind
		if r.model > 0 {
			n.model = strings.ToUpper(m[r.model])
		}
		return n
	}
	switch {
	case hasExt(lower, uploadExt...):
		n.kind = KindUpload
	case n.mac != "":
		n.kind = KindConfigDevice
	case hasExt(lower, firmwareExt...):
		n.kind = KindFirmware
	case hasExt(lower, configExt...):
		n.kind = KindConfigCommon
	default:
		n.kind = KindOther
	}
	return n
}
