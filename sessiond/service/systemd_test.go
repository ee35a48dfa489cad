package service

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
	"github.com/readymesh/readymesh/sessiond/service/systemd/systemdtest"
)

// TestLinuxPlan: the unit runs the binary kept in /opt on the state
// directory with the caller's run flags, restarts it on failure without
// ever giving up, and sandboxes nothing a session would inherit; the
// usual state directory is also the unit's StateDirectory.
func TestLinuxPlan(t *testing.T) {
	p, err := NewPlan(Spec{OS: "linux", StateDir: linuxStateDir + "/", Source: "/home/bob/sessiond",
		RunArgs: []string{"--interval=30m0s", "--inventory=/srv/my inventory.json"}})
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"run", "--state", linuxStateDir, "--interval=30m0s", "--inventory=/srv/my inventory.json"}
	if p.Exe != "/opt/readymesh/bin/sessiond" || !slices.Equal(p.Args, wantArgs) || p.LogFile != "" {
		t.Errorf("exe %s args %q log %q; want /opt/readymesh/bin/sessiond %q and the journal", p.Exe, p.Args, p.LogFile, wantArgs)
	}
	u := p.Systemd
	if u == nil || p.Windows != nil || p.Launchd != nil || u.Name != "readymesh-sessiond.service" ||
		u.Path() != "/etc/systemd/system/readymesh-sessiond.service" {
		t.Fatalf("plan %+v: want the systemd unit readymesh-sessiond.service", p)
	}
	exec := u.Values("Service", "ExecStart")
	if len(exec) != 1 {
		t.Fatalf("ExecStart %q, want one", exec)
	}
	if argv, err := systemd.SplitExec(exec[0]); err != nil || !slices.Equal(argv, append([]string{p.Exe}, p.Args...)) {
		t.Errorf("ExecStart=%s reads back as %q, %v; want the plan's command", exec[0], argv, err)
	}
	for _, want := range []struct{ section, key, value string }{
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartSec", "10s"},
		{"Service", "RestartPreventExitStatus", "2"},
		{"Service", "KillMode", "control-group"},
		{"Service", "StateDirectory", "readymesh/sessiond"},
		{"Service", "StateDirectoryMode", "0700"},
		{"Unit", "StartLimitIntervalSec", "0"},
		{"Unit", "After", "network-online.target"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.Values(want.section, want.key); !slices.Equal(got, []string{want.value}) {
			t.Errorf("[%s] %s = %q, want %s", want.section, want.key, got, want.value)
		}
	}
	// Sessions inherit the agent's sandbox: an elevated session must
	// write /usr and /etc, see the machine's /tmp and users' homes, and
	// use sudo.
	for _, key := range []string{"ProtectSystem", "PrivateTmp", "ProtectHome", "NoNewPrivileges", "PrivateDevices",
		"SystemCallFilter", "CapabilityBoundingSet", "ReadOnlyPaths", "InaccessiblePaths", "User"} {
		if got := u.Values("Service", key); got != nil {
			t.Errorf("%s=%q would reach into every session", key, got)
		}
	}
	text := strings.ReplaceAll(string(u.Bytes()), "\n# ", " ") // comments unwrapped
	for _, why := range []string{"ProtectSystem would make /usr, /boot and /etc read-only", "PrivateTmp would give sessions a /tmp of their own"} {
		if !strings.Contains(text, why) {
			t.Errorf("the unit does not say %q:\n%s", why, u.Bytes())
		}
	}

	// A state directory of the operator's own is not systemd's to make.
	p, err = NewPlan(Spec{OS: "linux", StateDir: "/srv/agent", Source: "/usr/bin/sessiond"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Systemd.Values("Service", "StateDirectory"); got != nil {
		t.Errorf("StateDirectory=%q for /srv/agent", got)
	}
}

// TestAgentUnitVerifies: systemd's own parser accepts the unit without a
// warning, for the usual state directory and for an odd one with run
// flags that need quoting.
func TestAgentUnitVerifies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []Spec{
		{OS: "linux", StateDir: linuxStateDir, Source: "/usr/bin/sessiond"},
		{OS: "linux", StateDir: "/srv/my agents/100% one", Source: "/usr/bin/sessiond",
			RunArgs: []string{"--inventory=/srv/$HOME/\"inv\".json", "--consent=window"}},
	} {
		p, err := NewPlan(spec)
		if err != nil {
			t.Fatal(err)
		}
		systemdtest.Verify(t, p.Systemd, exe)
	}
}
