package meshctl

import "testing"

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
