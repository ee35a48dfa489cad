package update

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
)

// TestSwapWhileRunning: the swap works while the binary it replaces runs
// (the watchdog is that binary; on Windows a running program's file can
// only be renamed), and again while the one it keeps as previous runs
// (the watchdog of an earlier update, still the parent), and the running
// program is unharmed.
func TestSwapWhileRunning(t *testing.T) {
	dir := testdir.New(t)
	p := PathsFor(filepath.Join(dir, "sessiond"+exeSuffix))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, p.Exe); err != nil {
		t.Fatal(err)
	}
	state := testdir.New(t)
	cmd := exec.Command(p.Exe, "run", "--state", state)
	cmd.Env = append(os.Environ(), helperEnv+"=silent", TrialEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, time.Minute, "the program's start", func() bool { return started(t, state) == 1 })
	for i, next := range []string{"second build", "third build"} {
		os.WriteFile(p.New, []byte(next), 0o755)
		if err := swap(p); err != nil {
			t.Fatalf("swap %d: %v", i+1, err)
		}
		if b, _ := os.ReadFile(p.Exe); string(b) != next {
			t.Fatalf("swap %d: EXE holds %q", i+1, clip(string(b), 20))
		}
	}
	if b, _ := os.ReadFile(p.Previous); string(b) != "second build" {
		t.Errorf("EXE.previous holds %q, want the second build", clip(string(b), 20))
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || len(stopped(t, state)) != 1 {
		t.Fatalf("the running program did not stop cleanly after the swaps: %v", err)
	}
}

// failRename makes rename fail when fail says so, for the test's life.
func failRename(t *testing.T, fail func(from, to string) bool) {
	t.Cleanup(func() { rename = os.Rename })
	rename = func(from, to string) error {
		if fail(from, to) {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: errors.New("refused by the test")}
		}
		return os.Rename(from, to)
	}
}

// refuseReplace makes renames over an existing EXE fail, as Windows
// refuses to replace a running program's file.
func refuseReplace(t *testing.T, p Paths) {
	failRename(t, func(_, to string) bool {
		_, err := os.Stat(to)
		return to == p.Exe && err == nil
	})
}

// TestSwapResumes: a swap interrupted at any point is finished by the next
// one, whether EXE can be replaced in place or (Windows, EXE running) only
// renamed aside.
func TestSwapResumes(t *testing.T) {
	for _, inPlace := range []bool{true, false} {
		for _, tc := range []struct {
			name  string
			setup func(p Paths) // from EXE=old, EXE.new=new
			err   bool
		}{
			{"from the start", func(Paths) {}, false},
			{"EXE renamed away", func(p Paths) { os.Rename(p.Exe, p.Previous) }, false},
			{"previous kept", func(p Paths) { copyFile(p.Exe, p.Previous) }, false},
			{"done", func(p Paths) { os.Rename(p.Exe, p.Previous); os.Rename(p.New, p.Exe) }, false},
			{"an older previous binary", func(p Paths) { os.WriteFile(p.Previous, []byte("older"), 0o755) }, false},
			{"nothing there", func(p Paths) { os.Remove(p.Exe); os.Remove(p.New) }, true},
			{"only EXE.new", func(p Paths) { os.Remove(p.Exe) }, true},
		} {
			name := map[bool]string{true: "in place/", false: "aside/"}[inPlace] + tc.name
			t.Run(name, func(t *testing.T) {
				p := PathsFor(filepath.Join(testdir.New(t), "sessiond"+exeSuffix))
				os.WriteFile(p.Exe, []byte("old"), 0o755)
				os.WriteFile(p.New, []byte("new"), 0o755)
				tc.setup(p)
				if !inPlace {
					refuseReplace(t, p)
				}
				err := swap(p)
				if tc.err {
					if err == nil {
						t.Fatal("swap without EXE and EXE.previous succeeded")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				for path, want := range map[string]string{p.Exe: "new", p.Previous: "old"} {
					if b, err := os.ReadFile(path); string(b) != want {
						t.Errorf("%s holds %q (%v), want %q", filepath.Base(path), b, err, want)
					}
				}
				if _, err := os.Stat(p.New); !os.IsNotExist(err) {
					t.Errorf("EXE.new left: %v", err)
				}
				for _, path := range []string{p.Previous, p.Exe} {
					if aside, _ := filepath.Glob(path + ".old-*"); len(aside) != 0 {
						t.Errorf("left aside: %v", aside)
					}
				}
			})
		}
	}
}

// TestSwapFailureKeepsExe: when EXE.new cannot be renamed to EXE, the
// swap fails with EXE holding the old binary and EXE.new kept, also when
// EXE was renamed aside and cannot be renamed back (it is copied back from
// EXE.previous then).
func TestSwapFailureKeepsExe(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(p Paths, from, to string) bool
	}{
		{"in place", func(p Paths, from, to string) bool { return from == p.New }},
		{"aside", func(p Paths, from, to string) bool {
			_, err := os.Stat(to)
			return from == p.New || to == p.Exe && err == nil
		}},
		{"aside, no way back", func(p Paths, from, to string) bool { return to == p.Exe }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PathsFor(filepath.Join(testdir.New(t), "sessiond"+exeSuffix))
			os.WriteFile(p.Exe, []byte("old"), 0o755)
			os.WriteFile(p.New, []byte("new"), 0o755)
			failRename(t, func(from, to string) bool { return tc.fail(p, from, to) })
			if err := swap(p); err == nil {
				t.Fatal("swap succeeded with EXE.new unable to move")
			}
			for path, want := range map[string]string{p.Exe: "old", p.New: "new"} {
				if b, err := os.ReadFile(path); string(b) != want {
					t.Errorf("%s holds %q (%v), want %q", filepath.Base(path), b, err, want)
				}
			}
		})
	}
}

// TestPaths: the staged and kept binaries are named after EXE, keeping a
// Windows program's extension.
func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		exe, suffix, next, prev string
	}{
		{"/opt/readymesh/bin/sessiond", "", "/opt/readymesh/bin/sessiond.new", "/opt/readymesh/bin/sessiond.previous"},
		{`C:\Program Files\readymesh\sessiond.exe`, ".exe", `C:\Program Files\readymesh\sessiond.new.exe`, `C:\Program Files\readymesh\sessiond.previous.exe`},
		{`C:\readymesh\SESSIOND.EXE`, ".exe", `C:\readymesh\SESSIOND.new.exe`, `C:\readymesh\SESSIOND.previous.exe`},
		{`C:\readymesh\sessiond`, ".exe", `C:\readymesh\sessiond.new.exe`, `C:\readymesh\sessiond.previous.exe`},
	} {
		p := pathsFor(tc.exe, tc.suffix)
		if p.Exe != tc.exe || p.New != tc.next || p.Previous != tc.prev {
			t.Errorf("pathsFor(%q) = %+v", tc.exe, p)
		}
	}
}
