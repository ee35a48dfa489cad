package service

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const winState = `C:\ProgramData\readymesh\sessiond`

// TestWindowsPlan: the binary goes under Program Files, the service runs
// it on the state directory with a log there and the caller's run flags,
// restarts after 5 s, 30 s and 60 s, and the state directory and its
// readymesh parent get the administrators-only ACL.
func TestWindowsPlan(t *testing.T) {
	p, err := NewPlan(Spec{OS: "windows", StateDir: winState + `\`, Source: `C:\Users\bob\Downloads\sessiond.exe`,
		RunArgs: []string{"--interval=30m0s", "--consent=window"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run", "--state", winState, "--log", winState + `\sessiond.log`, "--interval=30m0s", "--consent=window"}
	if p.Exe != `C:\Program Files\readymesh\sessiond.exe` || !slices.Equal(p.Args, want) || p.LogFile != winState+`\sessiond.log` {
		t.Errorf("exe %s args %q log %s, want C:\\Program Files\\readymesh\\sessiond.exe %q", p.Exe, p.Args, p.LogFile, want)
	}
	ws := p.Windows
	if ws == nil || p.Launchd != nil {
		t.Fatalf("plan %+v: want a Windows service and no launchd job", p)
	}
	if ws.Name != "readymesh-sessiond" || !ws.RecoverOnError || ws.ResetPeriod != 24*time.Hour ||
		!slices.Equal(ws.Recovery, []time.Duration{5 * time.Second, 30 * time.Second, time.Minute}) {
		t.Errorf("service %+v: want readymesh-sessiond restarting after 5s, 30s, 1m also on error exits, reset after a day", ws)
	}
	if want := []string{`C:\ProgramData\readymesh`, winState}; !slices.Equal(ws.SecureDirs, want) {
		t.Errorf("secured %q, want %q", ws.SecureDirs, want)
	}
	if StateSDDL != "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)" {
		t.Errorf("StateSDDL = %s: the state directory must be owned by Administrators and open to SYSTEM and Administrators only, inherited, protected", StateSDDL)
	}

	// A state directory of the operator's own choosing is secured alone,
	// and an explicit --log replaces the default one.
	p, err = NewPlan(Spec{OS: "windows", StateDir: `D:\agents\one`, Source: `C:\sessiond.exe`, RunArgs: []string{`--log=D:\logs\a.log`}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Windows.SecureDirs, []string{`D:\agents\one`}) {
		t.Errorf("secured %q, want only D:\\agents\\one", p.Windows.SecureDirs)
	}
	if want := []string{"run", "--state", `D:\agents\one`, `--log=D:\logs\a.log`}; !slices.Equal(p.Args, want) {
		t.Errorf("args %q, want %q", p.Args, want)
	}
}

// TestDarwinPlan: a daemon in /Library/LaunchDaemons runs the binary
// kept under /Library/Application Support; launchd writes the log.
func TestDarwinPlan(t *testing.T) {
	const state = "/Library/Application Support/readymesh/sessiond"
	p, err := NewPlan(Spec{OS: "darwin", StateDir: state + "/", Source: "/Users/bob/Downloads/sessiond", RunArgs: []string{"--record-input=true"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != "/Library/Application Support/readymesh/bin/sessiond" || p.LogFile != "/Library/Logs/readymesh/sessiond.log" ||
		!slices.Equal(p.Args, []string{"run", "--state", state, "--record-input=true"}) {
		t.Errorf("exe %s log %s args %q", p.Exe, p.LogFile, p.Args)
	}
	if p.Launchd == nil || p.Windows != nil || p.Launchd.Label != "io.readymesh.sessiond" ||
		p.Launchd.PlistPath != "/Library/LaunchDaemons/io.readymesh.sessiond.plist" {
		t.Errorf("plan %+v %+v: want the launchd job io.readymesh.sessiond", p, p.Launchd)
	}
}

// TestNewPlanRefuses: what cannot be planned says why.
func TestNewPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		err  string
	}{
		{Spec{OS: "linux", StateDir: "var/lib/sessiond", Source: "/usr/bin/sessiond"}, `"var/lib/sessiond" is not an absolute path on linux`},
		{Spec{OS: "linux", StateDir: "/s", Source: "/sessiond", RunArgs: []string{"--state", "/t"}}, "--state is the plan's own"},
		{Spec{OS: "freebsd", StateDir: "/var/db/sessiond", Source: "/usr/bin/sessiond"}, "no service manager support for freebsd"},
		{Spec{OS: "windows", StateDir: `state`, Source: `C:\sessiond.exe`}, `"state" is not an absolute path on windows`},
		{Spec{OS: "windows", StateDir: `/var/state`, Source: `C:\sessiond.exe`}, "not an absolute path"},
		{Spec{OS: "darwin", StateDir: `C:\state`, Source: "/sessiond"}, "not an absolute path on darwin"},
		{Spec{OS: "darwin", StateDir: "/s", Source: "/sessiond", RunArgs: []string{"--state=/t"}}, "--state is the plan's own"},
		{Spec{OS: "darwin", StateDir: "/s"}, "no binary to install"},
	} {
		p, err := NewPlan(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NewPlan(%+v) = %v, %v; want an error saying %q", tc.spec, p, err, tc.err)
		}
	}
}

// TestCommandLine: arguments are quoted as CommandLineToArgvW splits
// them back.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{`plain`, `plain`},
		{``, `""`},
		{`C:\Program Files\readymesh\sessiond.exe`, `"C:\Program Files\readymesh\sessiond.exe"`},
		{`C:\dir\`, `C:\dir\`},
		{`C:\my dir\`, `"C:\my dir\\"`},
		{`say "hi"`, `"say \"hi\""`},
		{`a\"b`, `"a\\\"b"`},
		{"tab\there", "\"tab\there\""},
	} {
		if got := quoteArg(tc.arg); got != tc.want {
			t.Errorf("quoteArg(%s) = %s, want %s", tc.arg, got, tc.want)
		}
	}
	got := CommandLine(`C:\Program Files\readymesh\sessiond.exe`, []string{"run", "--state", winState})
	if want := `"C:\Program Files\readymesh\sessiond.exe" run --state C:\ProgramData\readymesh\sessiond`; got != want {
		t.Errorf("CommandLine = %s, want %s", got, want)
	}
}

// TestPrint: --print shows the service's command line and recovery on
// Windows, the plist on macOS and the unit on Linux.
func TestPrint(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want []string
	}{
		{Spec{OS: "windows", StateDir: winState, Source: `C:\Users\bob\sessiond.exe`}, []string{
			"binary     C:\\Program Files\\readymesh\\sessiond.exe  (copied from C:\\Users\\bob\\sessiond.exe)\n",
			"acl        O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA) on C:\\ProgramData\\readymesh, " + winState + "\n",
			`service    readymesh-sessiond ("readymesh agent"), LocalSystem, automatic start`,
			`command    "C:\Program Files\readymesh\sessiond.exe" run --state ` + winState + ` --log ` + winState + `\sessiond.log`,
			"recovery   restart after 5s, 30s, 1m0s following a crash or an error exit; failures counted afresh after 24h0m0s\n",
		}},
		{Spec{OS: "linux", StateDir: "/var/lib/readymesh/sessiond", Source: "/home/bob/sessiond"}, []string{
			"binary     /opt/readymesh/bin/sessiond  (copied from /home/bob/sessiond)\n",
			"log        the journal (journalctl -u readymesh-sessiond.service)\n",
			"unit       /etc/systemd/system/readymesh-sessiond.service\n",
			"systemctl enable --now readymesh-sessiond.service\n",
			"\nExecStart=/opt/readymesh/bin/sessiond run --state /var/lib/readymesh/sessiond\n",
		}},
		{Spec{OS: "darwin", StateDir: "/Library/Application Support/readymesh/sessiond", Source: "/tmp/sessiond"}, []string{
			"daemon     /Library/LaunchDaemons/io.readymesh.sessiond.plist\n",
			"launchctl bootstrap system /Library/LaunchDaemons/io.readymesh.sessiond.plist\n",
			"<key>Label</key>\n\t<string>io.readymesh.sessiond</string>",
		}},
	} {
		p, err := NewPlan(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := p.Print(&b); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s plan printed\n%s\nwithout %q", tc.spec.OS, b.String(), w)
			}
		}
	}
}
