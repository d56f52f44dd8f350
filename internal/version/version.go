// Package version reports the build's version, injected at link time:
//
//	go build -ldflags "-X github.com/bulwark-ml/bulwark/internal/version.Version=v0.1.0" ./cmd/bulwark
package version

import "runtime/debug"

// Version is set by the linker; "dev" for plain `go build` and `go run`.
var Version = "dev"

// String returns the version, with the VCS revision when the build has one.
func String() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
