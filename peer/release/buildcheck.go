package release

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"strings"
)

// versionVar is the variable a release build sets with the linker's -X.
const versionVar = "github.com/readymesh/readymesh/peer/buildinfo.Version"

// checkBuild compares what a Go binary's embedded build information says
// with the platform its file name claims and the version being signed. It
// says nothing where it cannot tell: a binary that is not Go's or has no
// build information, one built with -trimpath (the toolchain then leaves
// -ldflags out of the record), and one built without -X of the version,
// whose version is the default in the source it was built from.
func checkBuild(r io.ReaderAt, platform, version string) error {
	bi, err := buildinfo.Read(r)
	if err != nil {
		return nil
	}
	var goos, goarch, ldflags string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		case "-ldflags":
			ldflags = s.Value
		}
	}
	if goos != "" && goarch != "" && goos+"/"+goarch != platform {
		return fmt.Errorf("built for %s/%s, but named for %s", goos, goarch, platform)
	}
	if v, ok := linkedVersion(ldflags, bi.Path); ok && v != version {
		return fmt.Errorf("built as version %q, not %q: build it again with -ldflags \"-X %s=%s\", or sign it as %s",
			v, version, versionVar, version, v)
	}
	return nil
}

// linkedVersion returns the value -X gives versionVar in ldflags, the
// -ldflags setting a binary's build information records for its main
// package mainPath. The setting is the flag's text as given to go build:
// it may start with a package pattern ("all=-X …"), and its fields may be
// quoted. As in the linker, the last -X of a variable wins.
func linkedVersion(ldflags, mainPath string) (string, bool) {
	ldflags = strings.TrimSpace(ldflags)
	if ldflags != "" && ldflags[0] != '-' {
		pattern, rest, ok := strings.Cut(ldflags, "=")
		if pattern = strings.TrimSpace(pattern); !ok || pattern != "all" && pattern != mainPath {
			return "", false // flags for packages that may not be the main one
		}
		ldflags = rest
	}
	fields, ok := splitQuoted(ldflags)
	if !ok {
		return "", false
	}
	var version string
	var found bool
	for i := 0; i < len(fields); i++ {
		var arg string
		switch f := fields[i]; {
		case (f == "-X" || f == "--X") && i+1 < len(fields):
			i++
			arg = fields[i]
		case strings.HasPrefix(f, "-X="), strings.HasPrefix(f, "--X="):
			_, arg, _ = strings.Cut(f, "=")
		default:
			continue
		}
		if name, value, ok := strings.Cut(arg, "="); ok && name == versionVar {
			version, found = value, true
		}
	}
	return version, found
}

// splitQuoted splits s into fields at spaces, a field that starts with a
// single or double quote running to the matching quote, as go build
// splits its flags. It reports false for an unterminated quote.
func splitQuoted(s string) ([]string, bool) {
	var fields []string
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return fields, true
		}
		if q := s[0]; q == '\'' || q == '"' {
			end := strings.IndexByte(s[1:], q)
			if end < 0 {
				return nil, false
			}
			fields = append(fields, s[1:1+end])
			s = s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t\r\n")
		if end < 0 {
			end = len(s)
		}
		fields = append(fields, s[:end])
		s = s[end:]
	}
}
