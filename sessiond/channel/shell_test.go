package channel

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

func TestWriteScriptPowerShellHasBOM(t *testing.T) {
	dir := testdir.New(t)
	p, err := writeScript(dir, wire.ShellPowerShell, "Write-Output 'héllo'\n")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(p) != ".ps1" || filepath.Dir(p) != dir {
		t.Fatalf("script written to %s, want a .ps1 in %s", p, dir)
	}
	b, _ := os.ReadFile(p)
	if !bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) || !bytes.HasSuffix(b, []byte("'héllo'\n")) {
		t.Fatalf("script bytes %q: want a UTF-8 BOM and the body unchanged", b)
	}
}

func TestWriteScriptCmdHasCRLF(t *testing.T) {
	p, err := writeScript(testdir.New(t), wire.ShellCmd, "@echo off\n:top\r\necho one\n")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if filepath.Ext(p) != ".cmd" || string(b) != "@echo off\r\n:top\r\necho one\r\n" {
		t.Fatalf("%s holds %q, want every line ending in CRLF once", p, b)
	}
}

func TestWriteScriptRefusesMissingDir(t *testing.T) {
	if _, err := writeScript(filepath.Join(testdir.New(t), "gone"), wire.ShellPowerShell, "x"); err == nil {
		t.Fatal("writeScript into a missing directory: no error")
	}
}

func TestCmdLaunchQuoting(t *testing.T) {
	l := cmdLaunch(`C:\Windows\System32\cmd.exe`, `echo "a b" & ver`)
	want := `"C:\Windows\System32\cmd.exe" /d /s /c "echo "a b" & ver"`
	if l.cmdLine != want {
		t.Fatalf("command line %s, want %s", l.cmdLine, want)
	}
}

func TestShellLine(t *testing.T) {
	l, err := shellLine(wire.ShellSh, "echo $((1+2))")
	if runtime.GOOS == "windows" {
		if err == nil {
			t.Logf("sh.exe found at %s", l.argv[0])
		}
		l, err = shellLine(wire.ShellCmd, "echo hi")
		if err != nil || l.cmdLine == "" {
			t.Fatalf("cmd line: %+v, %v", l, err)
		}
		return
	}
	if err != nil || strings.Join(l.argv, " ") != "/bin/sh -c echo $((1+2))" {
		t.Fatalf("sh line: %q, %v", l.argv, err)
	}
	if _, err := shellLine(wire.ShellCmd, "echo hi"); err == nil || !strings.Contains(err.Error(), "Windows shell") {
		t.Fatalf("cmd on %s: %v, want a refusal naming Windows", runtime.GOOS, err)
	}
}

func TestScriptForPowerShellFlags(t *testing.T) {
	s := &Server{}
	sc, err := s.scriptFor(identity{}, wire.ShellPowerShell, "Get-Date")
	if err != nil {
		t.Logf("no PowerShell here (%v): checking the refusal only", err)
		if !strings.Contains(err.Error(), "PowerShell") {
			t.Fatalf("refusal %q does not name PowerShell", err)
		}
		return
	}
	defer os.Remove(sc.file)
	got := strings.Join(sc.argv[1:], " ")
	if got != "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "+sc.file {
		t.Fatalf("PowerShell arguments %q", got)
	}
}
