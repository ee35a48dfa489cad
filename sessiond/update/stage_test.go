package update

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestStage: the staged file is the download's bytes, executable, next to
// EXE; EXE is not touched.
func TestStage(t *testing.T) {
	dir := testdir.New(t)
	data, bin := blob(t, 100<<10)
	src := filepath.Join(dir, "download.part")
	os.WriteFile(src, data, 0o600)
	p := PathsFor(filepath.Join(dir, "sessiond"+exeSuffix))
	os.WriteFile(p.Exe, []byte("old"), 0o755)
	// A link left where the temporary file goes is not followed.
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("victim"), 0o600)
	if runtime.GOOS != "windows" {
		if err := os.Symlink(victim, p.New+".tmp"); err != nil {
			t.Fatal(err)
		}
	}
	if err := Stage(src, bin, p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Errorf("staging wrote through a link: the victim holds %d bytes", len(b))
	}
	got, err := os.ReadFile(p.New)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("EXE.new holds %d bytes (%v)", len(got), err)
	}
	if st, _ := os.Stat(p.New); runtime.GOOS != "windows" && st.Mode().Perm() != 0o755 {
		t.Errorf("EXE.new has mode %v, want 0755", st.Mode().Perm())
	}
	if old, _ := os.ReadFile(p.Exe); string(old) != "old" {
		t.Errorf("EXE changed")
	}
}

// TestStageRefusals: a download that does not match, or a directory the
// agent cannot write, leaves no EXE.new and no temporary file.
func TestStageRefusals(t *testing.T) {
	dir := testdir.New(t)
	data, bin := blob(t, 10<<10)
	src := filepath.Join(dir, "download.part")
	os.WriteFile(src, data, 0o600)
	short := bin
	short.Size--
	other := bin
	other.SHA256 = strings.Repeat("0", 64)
	notADir := filepath.Join(dir, "file")
	os.WriteFile(notADir, nil, 0o600)
	readOnly := filepath.Join(dir, "ro")
	os.Mkdir(readOnly, 0o555)
	for _, tc := range []struct {
		name   string
		exeDir string
		bin    wire.ReleaseBinary
		want   string
	}{
		{"changed after the check", dir, other, "SHA-256 mismatch"},
		{"size differs", dir, short, "the manifest says"},
		{"install directory not writable", notADir, bin, "cannot write next to its executable"},
		{"install directory read-only", readOnly, bin, "cannot write next to its executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.exeDir == readOnly && (runtime.GOOS == "windows" || os.Geteuid() == 0) {
				t.Skip("a mode-0555 directory is writable for root and on Windows; the not-a-directory case covers the refusal")
			}
			p := PathsFor(filepath.Join(tc.exeDir, "sessiond"+exeSuffix))
			err := Stage(src, tc.bin, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, f := range []string{p.New, p.New + ".tmp"} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("%s left behind", f)
				}
			}
		})
	}
}
