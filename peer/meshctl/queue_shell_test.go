package meshctl

import (
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestShellForExtension(t *testing.T) {
	for file, want := range map[string]string{
		"fix.ps1": "powershell", "FIX.PS1": "powershell", "clean.cmd": "cmd", "old.BAT": "cmd",
		"x.sh": "sh", "script": "", "notes.txt": "", `C:\jobs\a.ps1`: "powershell",
	} {
		if got := shellFor(file); got != want {
			t.Errorf("shellFor(%q) = %q, want %q", file, got, want)
		}
	}
}

func TestUpdatesCountNeverZeroWhenUnknown(t *testing.T) {
	r := wire.Readiness{UpdatesUnknown: "Windows Update Agent: COM class not registered"}
	if got := updatesCount(r); got != "unknown" {
		t.Fatalf("unknown updates shown as %q", got)
	}
	r.UpdatesUnknown = ""
	if got := updatesCount(r); got != "0" {
		t.Fatalf("no pending updates shown as %q", got)
	}
}
