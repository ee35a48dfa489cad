package ipc

import (
	"strings"
	"testing"
)

// TestPipeName: every spelling of one directory gives one name, other
// directories other names, and the name stays what released agents use.
func TestPipeName(t *testing.T) {
	const dir = `C:\ProgramData\readymesh\sessiond`
	// Golden: changing it would leave older agents unreachable.
	const want = `\\.\pipe\readymesh-sessiond-d5f822d8a0e4cbd9`
	if got := PipeName(dir); got != want {
		t.Errorf("PipeName(%q) = %q, want %q", dir, got, want)
	}
	for _, same := range []string{`c:\programdata\READYMESH\sessiond`, `C:/ProgramData/readymesh/sessiond`,
		`C:\ProgramData\readymesh\sessiond\`, `C:\ProgramData\readymesh\sessiond\\`} {
		if got := PipeName(same); got != want {
			t.Errorf("PipeName(%q) = %q, want %q", same, got, want)
		}
	}
	for _, other := range []string{`C:\ProgramData\readymesh\sessiond2`, `D:\ProgramData\readymesh\sessiond`, `C:\`, `C:`} {
		if got := PipeName(other); got == want {
			t.Errorf("PipeName(%q) = %q, the same as %q", other, got, dir)
		}
	}
	if PipeName(`C:\`) == PipeName(`C:`) {
		t.Errorf("the drive root and the drive's current directory share a name")
	}
	if n := PipeName(strings.Repeat(`\very long`, 100)); len(n) > 256 {
		t.Errorf("a long path gives a %d-character name, over Windows' 256", len(n))
	}
}

// TestPipeSDDL: the pipe admits its owner, SYSTEM and Administrators and
// nobody else, with inheritance blocked.
func TestPipeSDDL(t *testing.T) {
	for _, tc := range []struct{ owner, want string }{
		{SIDSystem, "O:S-1-5-18D:P(A;;GA;;;SY)(A;;GA;;;BA)"},
		{"S-1-5-21-1-2-3-1001", "O:S-1-5-21-1-2-3-1001D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-21-1-2-3-1001)"},
	} {
		if got := PipeSDDL(tc.owner); got != tc.want {
			t.Errorf("PipeSDDL(%s) = %s, want %s", tc.owner, got, tc.want)
		}
	}
}

// TestTrustedOwner: a dialler talks only to a pipe SYSTEM, Administrators
// or it itself owns.
func TestTrustedOwner(t *testing.T) {
	const self, other = "S-1-5-21-1-2-3-1001", "S-1-5-21-1-2-3-1002"
	for _, tc := range []struct {
		owner string
		want  bool
	}{
		{SIDSystem, true}, {SIDAdmins, true}, {self, true},
		{other, false}, {"S-1-1-0", false}, {"S-1-5-32-545", false}, {"", false},
	} {
		if got := TrustedOwner(tc.owner, self); got != tc.want {
			t.Errorf("TrustedOwner(%q) = %v, want %v", tc.owner, got, tc.want)
		}
	}
	if TrustedOwner("", "") {
		t.Error("an empty owner is trusted by a dialler whose SID is empty")
	}
}
