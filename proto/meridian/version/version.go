// Package version is the software version every Meridian process reports:
// in `meridian version`, in gossip meta, on Cluster objects.
package version

import "runtime/debug"

// Override is set at build time with
// -ldflags "-X github.com/meridian-fed/meridian/proto/meridian/version.Override=v0.1.0";
// otherwise the version comes from the module and VCS information Go embeds.
var Override = ""

// Version is the version string ("dev+<commit>" for a development build).
var Version = get()

func get() string {
	if Override != "" {
		return Override
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}
