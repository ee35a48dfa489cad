package collect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The macOS collectors run here on Linux: the commands are shell scripts
// that print the outputs recorded in testdata/darwin (reconstructions in
// the real formats, see its README), and the kernel's answers are fixed.

// fakeKernel answers for a Mac's kernel.
type fakeKernel struct {
	rel, boot string
	err       error
}

func (k fakeKernel) release() (string, error) { return k.rel, k.err }
func (k fakeKernel) bootID() (string, error)  { return k.boot, k.err }
func (k fakeKernel) arch() string             { return "arm64" }

var sonomaKernel = fakeKernel{rel: "23.2.0", boot: "5B1F6B6E-8C3A-4E8D-9E0C-2F7D1A9B4C11"}

// darwinData returns the absolute path of a file in testdata/darwin.
func darwinData(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "darwin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// readDarwin returns the contents of a file in testdata/darwin.
func readDarwin(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(darwinData(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// catScript is a script body printing the testdata files to stdout and
// stderr ("" for none).
func catScript(t *testing.T, stdout, stderr string) string {
	var b strings.Builder
	if stderr != "" {
		b.WriteString("cat '" + darwinData(t, stderr) + "' >&2\n")
	}
	if stdout != "" {
		b.WriteString("cat '" + darwinData(t, stdout) + "'\n")
	}
	return b.String()
}

// testMac returns a macMachine whose commands are the given scripts, found
// by base name. It fails the test when a collector asks for a command by a
// relative name: the agent must not let PATH choose what it runs as root.
func testMac(t *testing.T, cfg Config, k macKernel, scripts map[string]string) macMachine {
	look := fakeTools(t, scripts)
	m := macMachine{machine: testMachine(t, cfg), kernel: k}
	m.lookPath = func(p string) (string, error) {
		if !filepath.IsAbs(p) {
			t.Errorf("looked up %q by a relative name", p)
		}
		return look(filepath.Base(p))
	}
	return m
}

// macScripts are the commands of a Sonoma machine with updates pending.
func macScripts(t *testing.T) map[string]string {
	return map[string]string{
		"sw_vers":         catScript(t, "sw_vers_14.2.1.txt", ""),
		"system_profiler": catScript(t, "system_profiler_apps.json", ""),
		"softwareupdate":  catScript(t, "softwareupdate_tahoe.stdout", "softwareupdate_list.stderr"),
	}
}

// collectMac runs every macOS collector with the given commands.
func collectMac(t *testing.T, k macKernel, scripts map[string]string) *wire.Snapshot {
	cfg := agentConfig()
	m := testMac(t, cfg, k, scripts)
	return Collect(context.Background(), m.collectors(cfg), time.Now())
}

func TestMacCollectors(t *testing.T) {
	s := collectMac(t, sonomaKernel, macScripts(t))
	if len(s.CollectorErrs) != 0 {
		t.Fatalf("collector errors: %+v", s.CollectorErrs)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("snapshot does not validate: %v", err)
	}
	want := wire.OS{Family: "darwin", ID: "macos", Name: "macOS 14.2.1", Version: "14.2.1",
		Kernel: "23.2.0", Arch: "arm64", DisplayVersion: "Sonoma", Build: "23C71"}
	if s.OS != want {
		t.Errorf("os %+v\nwant %+v", s.OS, want)
	}
	if s.Hostname == "" || s.BootID != sonomaKernel.boot {
		t.Errorf("hostname %q, boot id %q", s.Hostname, s.BootID)
	}
	if len(s.Packages) != 10 || len(s.PendingUpdates) != 3 || countSecurity(s.PendingUpdates) != 1 {
		t.Errorf("%d packages, %d updates (%d security)", len(s.Packages), len(s.PendingUpdates), countSecurity(s.PendingUpdates))
	}
	var names []string
	for _, c := range macCollectors(agentConfig(), sonomaKernel) {
		names = append(names, c.Name())
	}
	if got := strings.Join(names, " "); got != "agent os hostname boot_id packages updates addresses" {
		t.Errorf("collectors %s", got)
	}
}

// TestMacCollectorsFailAlone checks that each failing command costs only
// its own part of the snapshot, and that a failed update check leaves the
// pending updates unknown rather than empty.
func TestMacCollectorsFailAlone(t *testing.T) {
	scripts := macScripts(t)
	scripts["softwareupdate"] = "echo 'Software Update Tool' >&2; echo 'Cannot reach the Software Update server' >&2; exit 1"
	scripts["system_profiler"] = "exit 0" // prints nothing
	delete(scripts, "sw_vers")
	s := collectMac(t, fakeKernel{err: errBoom}, scripts)
	errs := map[string]string{}
	for _, e := range s.CollectorErrs {
		errs[e.Collector] = e.Error
	}
	for name, want := range map[string]string{
		"os":       "sw_vers",
		"boot_id":  "boom",
		"packages": "system_profiler: output ends early",
		"updates":  "Cannot reach the Software Update server",
	} {
		if !strings.Contains(errs[name], want) {
			t.Errorf("%s error %q, want %q", name, errs[name], want)
		}
	}
	if len(s.CollectorErrs) != 4 {
		t.Errorf("errors %+v", s.CollectorErrs)
	}
	if s.PendingUpdates != nil || s.Packages != nil {
		t.Errorf("updates %+v, packages %+v", s.PendingUpdates, s.Packages)
	}
	if s.OS.Family != "darwin" || s.OS.Arch != "arm64" || s.Hostname == "" {
		t.Errorf("os %+v, hostname %q", s.OS, s.Hostname)
	}
}

func TestMacBootIDFromTime(t *testing.T) {
	a, b := macBootIDFromTime(1700000000, 5), macBootIDFromTime(1700000000, 500000)
	if a != "boottime-1700000000.000005" || a == b {
		t.Errorf("%q, %q", a, b)
	}
}

func TestMacOutputBounds(t *testing.T) {
	m := testMachine(t, Config{})
	look := fakeTools(t, map[string]string{
		"big":   "head -c 1000000 /dev/zero",
		"fits":  "printf 12345; echo warn >&2",
		"fails": "echo out; echo 'bad thing' >&2; exit 3",
	})
	run := func(name string) (string, string, error) {
		p, _ := look(name)
		return m.macOutput(context.Background(), 5, p)
	}
	if out, _, err := run("big"); !errors.Is(err, errMacOutputTooLarge) || out != "" {
		t.Errorf("big: %q, %v", out, err)
	}
	if out, errOut, err := run("fits"); err != nil || out != "12345" || errOut != "warn\n" {
		t.Errorf("fits: %q, %q, %v", out, errOut, err)
	}
	if _, errOut, err := run("fails"); err == nil || !strings.Contains(err.Error(), "exit status 3: bad thing") || errOut != "bad thing\n" {
		t.Errorf("fails: %q, %v", errOut, err)
	}
}
