package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// osReleasePaths are tried in order, as os-release(5) says.
var osReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}

// collectOS fills s.OS. Family and Arch are always set; kernel and
// os-release are read independently so one missing file loses only its
// own fields.
func (m machine) collectOS(_ context.Context, s *wire.Snapshot) error {
	s.OS.Family = "linux"
	s.OS.Arch = runtime.GOARCH
	var errs []error
	// osrelease holds what uname -r prints.
	kernel, err := m.readTrimmed("/proc/sys/kernel/osrelease")
	if err != nil {
		errs = append(errs, fmt.Errorf("kernel release: %w", err))
	}
	s.OS.Kernel = kernel
	kv, err := m.readOSRelease()
	if err != nil {
		errs = append(errs, err)
	}
	s.OS.ID, s.OS.Name, s.OS.Version = osIdentity(kv)
	return errors.Join(errs...)
}

// readOSRelease reads the first os-release file that exists.
func (m machine) readOSRelease() (map[string]string, error) {
	for _, p := range osReleasePaths {
		b, err := os.ReadFile(m.path(p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("os-release: %w", err)
		}
		return parseOSRelease(string(b)), nil
	}
	return nil, fmt.Errorf("os-release: none of %s exists", strings.Join(osReleasePaths, ", "))
}

// osIdentity picks the snapshot's ID, name and version from os-release
// fields, with the defaults os-release(5) gives for missing ones.
func osIdentity(kv map[string]string) (id, name, version string) {
	id = cmpOr(kv["ID"], "linux")
	name = cmpOr(kv["PRETTY_NAME"], kv["NAME"], "Linux")
	return id, name, kv["VERSION_ID"]
}

// cmpOr returns the first non-empty string.
func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseOSRelease parses os-release text: KEY=VALUE lines, where VALUE may
// be single- or double-quoted and double-quoted values may escape ", \, $
// and ` with a backslash. Comments, blank lines and lines that are not
// assignments are skipped; it never fails, because a half-readable file
// still names the distribution.
func parseOSRelease(text string) map[string]string {
	kv := make(map[string]string)
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || !validKey(key) {
			continue
		}
		kv[key] = unquoteShell(strings.TrimSpace(val))
	}
	return kv
}

// validKey reports whether k is a shell variable name, as os-release keys are.
func validKey(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range []byte(k) {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unquoteShell undoes the quoting os-release allows. A value whose quotes
// do not close is returned as written.
func unquoteShell(v string) string {
	if len(v) < 2 || v[len(v)-1] != v[0] {
		return v
	}
	switch v[0] {
	case '\'':
		return v[1 : len(v)-1]
	case '"':
		return unescapeDouble(v[1 : len(v)-1])
	}
	return v
}

// unescapeDouble removes the backslash before the characters a shell
// treats specially inside double quotes; other backslashes stay.
func unescapeDouble(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
