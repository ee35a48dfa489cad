// Package buildinfo says which build of readymesh is running: the release
// version every binary of one build shares, the commit it was built from,
// the Go release, and the range of wire protocol versions it speaks. The
// three binaries print it with their version command, the broker serves it
// on /healthz and in its broker list, and peers compare protocol versions
// when they meet, so a rolling upgrade can be checked broker by broker.
//
// Version is set at link time for releases:
//
//	go build -ldflags "-X github.com/readymesh/readymesh/peer/buildinfo.Version=0.4.0" ./...
//
// The commit and the Go release come from the build information the Go
// toolchain embeds (runtime/debug.ReadBuildInfo). Where VCS stamping is
// off (-buildvcs=false), make build sets Commit the same way.
package buildinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// Version is the release version of this build, semver without a leading
// "v". Agents report it in their check-ins; brokers judge agents behind by
// it.
var Version = "0.4.0"

// Commit is the commit of this build when the toolchain recorded none,
// set at link time by make build ("+modified" when the tree had changes).
var Commit = ""

// Info describes one binary of a build.
type Info struct {
	// Program is the binary: "broker", "sessiond" or "meshctl".
	Program string `json:"program"`
	// Version is the release version (Version).
	Version string `json:"version"`
	// Module is the Go module's version as the toolchain recorded it:
	// "(devel)" for a build from a work tree, a tag or pseudo-version for
	// go install of a published module.
	Module string `json:"module_version"`
	// Commit is the VCS revision the binary was built from, "" when the
	// build had no VCS information (go test binaries, -buildvcs=false).
	Commit string `json:"commit,omitempty"`
	// Modified says the work tree had changes not in Commit.
	Modified bool `json:"modified,omitempty"`
	// Go is the Go release that built the binary.
	Go string `json:"go"`
	// Protocol is the wire protocol version this build speaks, and
	// MinProtocol the oldest it still serves (see wire.Protocol).
	Protocol    int `json:"protocol"`
	MinProtocol int `json:"min_protocol"`
}

// Get returns the build information of program.
func Get(program string) Info {
	in := Info{Program: program, Version: Version, Module: "(unknown)", Go: runtime.Version(),
		Protocol: wire.Protocol, MinProtocol: wire.MinProtocol}
	if c, dirty := strings.CutSuffix(Commit, "+modified"); c != "" {
		in.Commit, in.Modified = c, dirty
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	in.Module = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the one-line form: "broker 0.2.0 (commit 46388e2, go1.26.0,
// protocol 1)".
func (in Info) String() string {
	commit := "unknown"
	if in.Commit != "" {
		commit = in.Commit[:min(len(in.Commit), 12)]
		if in.Modified {
			commit += "+modified"
		}
	}
	proto := fmt.Sprint(in.Protocol)
	if in.MinProtocol != in.Protocol {
		proto = fmt.Sprintf("%d (serves %d–%d)", in.Protocol, in.MinProtocol, in.Protocol)
	}
	return fmt.Sprintf("%s %s (commit %s, %s, protocol %s)", in.Program, in.Version, commit, in.Go, proto)
}

// Write prints program's build information to w: the one-line form, or
// with asJSON the Info as JSON.
func Write(w io.Writer, program string, asJSON bool) error {
	in := Get(program)
	if !asJSON {
		_, err := fmt.Fprintln(w, in)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}
