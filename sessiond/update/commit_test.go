package update

import (
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
		if err := swap(p, keepByLink); err != nil {
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

// TestSwapResumes: a swap interrupted at any point is finished by the next
// one, both ways of keeping the previous binary.
func TestSwapResumes(t *testing.T) {
	for _, link := range []bool{true, false} {
		for _, tc := range []struct {
			name  string
			setup func(p Paths) // from EXE=old, EXE.new=new
			err   bool
		}{
			{"from the start", func(Paths) {}, false},
			{"EXE renamed away", func(p Paths) { os.Rename(p.Exe, p.Previous) }, false},
			{"done", func(p Paths) { os.Rename(p.Exe, p.Previous); os.Rename(p.New, p.Exe) }, false},
			{"an older previous binary", func(p Paths) { os.WriteFile(p.Previous, []byte("older"), 0o755) }, false},
			{"nothing there", func(p Paths) { os.Remove(p.Exe); os.Remove(p.New) }, true},
		} {
			name := map[bool]string{true: "link/", false: "rename/"}[link] + tc.name
			t.Run(name, func(t *testing.T) {
				p := PathsFor(filepath.Join(testdir.New(t), "sessiond"+exeSuffix))
				os.WriteFile(p.Exe, []byte("old"), 0o755)
				os.WriteFile(p.New, []byte("new"), 0o755)
				tc.setup(p)
				err := swap(p, link)
				if tc.err {
					if err == nil {
						t.Fatal("swap of nothing succeeded")
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
				if aside, _ := filepath.Glob(p.Previous + ".old-*"); len(aside) != 0 {
					t.Errorf("left aside: %v", aside)
				}
			})
		}
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
