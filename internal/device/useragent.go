package device

import (
	"regexp"
	"strings"

	"github.com/provgate/provgate/internal/macaddr"
)

type uaInfo struct{ brand, model, mac string }

// A User-Agent rule: a pattern, the brand, and the groups holding model
// and MAC (0: none). Patterns are anchored where vendors are consistent;
// RE2 keeps every match linear in the input.
type uaRule struct {
	re         *regexp.Regexp
	brand      string
	model, mac int
}

// macText matches a MAC in any usual notation.
const macText = `((?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}|[0-9a-fA-F]{12})`

var uaRules = []uaRule{
	// FileTransport PolycomVVX-VVX_411-UA/6.4.3.5018 Type/Application
	{regexp.MustCompile(`Polycom[A-Za-z]*-([A-Za-z]+_?\d+[A-Za-z]*)-UA/`), Polycom, 1, 0},
	// Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56 (and W60B, or no MAC)
	{regexp.MustCompile(`^Yealink\s+(?:SIP[- ])?([A-Za-z0-9-]+?)\s+[\d.]+(?:\s+` + macText + `)?`), Yealink, 1, 2},
	// SIP-T46S 66.86.0.15 00:15:65:12:34:56 (no brand prefix)
	{regexp.MustCompile(`^SIP-(T\d+[A-Za-z]*)\s+[\d.]+(?:\s+` + macText + `)?`), Yealink, 1, 2},
	// Cisco-CP-8841-3PCC/11.3.1 (00562b043615)
	{regexp.MustCompile(`^Cisco-(CP-\d+[A-Za-z]*)-3PCC/\S+\s*\(` + macText + `\)`), Cisco, 1, 2},
	// Cisco/SPA504G-7.6.2 (001B54AABB01)(CCQ1234A5BC): the second group is a serial number
	{regexp.MustCompile(`^Cisco/(SPA\d+[A-Za-z]*)-\S+\s*\(` + macText + `\)`), Cisco, 1, 2},
	// Linksys/SPA-942-6.1.5(a) (4FM00G605544): a serial number, never a MAC
	{regexp.MustCompile(`^Linksys/(SPA-?\d+[A-Za-z]*)-`), Cisco, 1, 0},
	// Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82a1b2c3
	{regexp.MustCompile(`^Grandstream Model HW (\S+) SW \S+(?: DevId ` + macText + `)?`), Grandstream, 1, 2},
	// Mozilla/4.0 (compatible; snom760-SIP 8.7.5.35 1.1.5-IFX-26.11.12 000413778899)
	{regexp.MustCompile(`snom([A-Za-z]?\d+[A-Za-z]?)-SIP\s[^)]*?(?:\s` + macText + `)?\)`), Snom, 1, 2},
	// Aastra6867i MAC:00-08-5D-12-34-56 V:4.2.0.2023-SIP / Mitel6920 MAC:…
	{regexp.MustCompile(`^(?:Aastra|Mitel)\s?(\d+[A-Za-z]*)\s+MAC:` + macText), Mitel, 1, 2},
	// Fanvil X6U 2.12.1 0c383e123456 (the model may contain spaces)
	{regexp.MustCompile(`^Fanvil\s+(.+?)\s+\d+\.[\d.]+(?:\s+` + macText + `)?`), Fanvil, 1, 2},
	// Panasonic_KX-TGP600/06.001 (0080f0123456)
	{regexp.MustCompile(`^Panasonic_([A-Za-z0-9-]+)/\S+(?:\s*\(` + macText + `\))?`), Panasonic, 1, 2},
	// … AVAYA/J179-4.0.10.3.2 (MAC:c81fea123456)
	{regexp.MustCompile(`AVAYA/(J\d+|\d+[A-Za-z]*)-\S+(?:\s*\(MAC:` + macText + `\))?`), Avaya, 1, 2},
	// Htek UC924 2.0.4.4.37 00:1f:c1:12:34:56
	{regexp.MustCompile(`^Htek\s+(\S+)\s+[\d.]+(?:\s+` + macText + `)?`), Htek, 1, 2},
	// Gigaset N670 IP PRO/83.V2.39.0+build.6ba4b1d;7C2F80123456
	{regexp.MustCompile(`^Gigaset\s+([^/;]+?)/[^;]*(?:;` + macText + `)?`), Gigaset, 1, 2},
	// ALE H6 1.2.3 3c28a6123456
	{regexp.MustCompile(`^ALE\s+(\S+)\s+[\d.]+(?:\s+` + macText + `)?`), Alcatel, 1, 2},
	// AUDC-IPPhone/2.2.8.69 (445HD; 00908F123456)
	{regexp.MustCompile(`^AUDC-IPPhone/\S+\s*\(([^;)]+);\s*` + macText + `\)`), AudioCodes, 1, 2},
	// OBIHAI/OBi202-3.2.2.5921
	{regexp.MustCompile(`^OBIHAI/(OBi\d+)-`), Obihai, 1, 0},
}

func parseUserAgent(ua string) uaInfo {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return uaInfo{}
	}
	for _, r := range uaRules {
		m := r.re.FindStringSubmatch(ua)
		if m == nil {
			continue
		}
		u := uaInfo{brand: r.brand}
		if r.model > 0 {
			u.model = strings.TrimSpace(m[r.model])
		}
		if r.mac > 0 && m[r.mac] != "" {
			if mac, err := macaddr.Parse(m[r.mac]); err == nil && !placeholder(mac) {
				u.mac = mac
			}
		}
		return u
	}
	return uaInfo{}
}
