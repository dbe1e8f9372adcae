// Package buildinfo names the version of the binaries, set at link time by
// the Makefile (-X …/buildinfo.Version=…) or read from the module.
package buildinfo

import "runtime/debug"

// Version is set by the linker; empty means "ask the module".
var Version string

// String returns the version, e.g. "v0.1.0" or "devel".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
