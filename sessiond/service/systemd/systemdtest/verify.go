// Package systemdtest checks generated units with systemd's own parser,
// for the tests of the packages that generate them.
package systemdtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// verifyWait bounds one systemd-analyze run (it takes a fifth of a
// second here).
const verifyWait = 30 * time.Second

// Verify writes u into a temporary directory, with its command replaced
// by exe (systemd-analyze checks that the command exists and is
// executable, and the installed path need not exist here), and runs
// `systemd-analyze verify` on it. Any complaint fails t: an unknown key or
// a bad value is only a warning to systemd, which ignores the line and
// runs the unit without it.
//
// Without systemd-analyze (the apt package systemd; make deps installs
// it), t is skipped saying so, or fails under READYMESH_REQUIRE_NETNS=1,
// where nothing may be skipped. On other systems than Linux (the Windows
// tests under Wine) it is skipped: systemd-analyze is Linux's.
func Verify(t testing.TB, u *systemd.Unit, exe string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("skipping: systemd-analyze verify runs on Linux, and this is %s", runtime.GOOS)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		msg := "no systemd-analyze to verify the unit with (apt package systemd; make deps installs it)"
		if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
			t.Fatal(msg + " (READYMESH_REQUIRE_NETNS=1)")
		}
		t.Skip("skipping: " + msg)
	}
	v := withExe(t, u, exe)
	path := filepath.Join(t.TempDir(), v.Name)
	if err := os.WriteFile(path, v.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s\nthe unit:\n%s", v.Name, err, out, v.Bytes())
	}
}

// withExe is a copy of u whose ExecStart and ExecStopPost run exe
// instead of their own command, with the same arguments.
func withExe(t testing.TB, u *systemd.Unit, exe string) *systemd.Unit {
	t.Helper()
	v := *u
	v.Sections = make([]systemd.Section, len(u.Sections))
	for i, s := range u.Sections {
		s.Directives = append([]systemd.Directive(nil), s.Directives...)
		for j, d := range s.Directives {
			if d.Key != "ExecStart" && d.Key != "ExecStopPost" {
				continue
			}
			argv, err := systemd.SplitExec(d.Value)
			if err != nil {
				t.Fatalf("%s=%s: %v", d.Key, d.Value, err)
			}
			argv[0] = exe
			s.Directives[j].Value = systemd.Exec(argv)
		}
		v.Sections[i] = s
	}
	return &v
}
