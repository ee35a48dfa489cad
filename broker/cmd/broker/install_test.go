package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/service/installtest"
	"github.com/readymesh/readymesh/sessiond/service/systemd"
	"github.com/readymesh/readymesh/sessiond/service/systemd/systemdtest"
)

// plan parses an install command line and fails t if it is refused.
func plan(t *testing.T, args ...string) *servicePlan {
	t.Helper()
	p, _, err := parseInstall(args)
	if err != nil {
		t.Fatalf("install %s: %v", strings.Join(args, " "), err)
	}
	return p
}

// TestServicePlan: the unit runs the binary kept in /opt as its own user
// on the StateDirectory with the run flags given, sized for its agents,
// without capabilities unless a port needs one, under a tight sandbox.
func TestServicePlan(t *testing.T) {
	p := plan(t, "--name", "eu-1", "--listen", "0.0.0.0:7400,/ip6/::/udp/7400/quic-v1", "--heartbeat", "3s")
	argv, err := systemd.SplitExec(p.Unit.Values("Service", "ExecStart")[0])
	want := []string{"/opt/readymesh/bin/broker", "run", "--data", "/var/lib/readymesh/broker",
		"--heartbeat=3s", "--listen=0.0.0.0:7400,/ip6/::/udp/7400/quic-v1", "--name=eu-1"}
	if err != nil || !slices.Equal(argv, want) {
		t.Errorf("ExecStart reads back as %q, %v; want %q", argv, err, want)
	}
	for _, want := range []struct{ section, key, value string }{
		{"Service", "User", "readymesh"},
		{"Service", "Group", "readymesh"},
		{"Service", "StateDirectory", "readymesh/broker"},
		{"Service", "LimitNOFILE", "35120"}, // 3 × 10,000 agents + 4096 HTTP + 1024
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartPreventExitStatus", "2"},
		{"Service", "CapabilityBoundingSet", ""},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
		{"Service", "SystemCallArchitectures", "native"},
		{"Service", "UMask", "0077"},
		{"Unit", "StartLimitBurst", "5"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := p.Unit.Values(want.section, want.key); !slices.Equal(got, []string{want.value}) {
			t.Errorf("[%s] %s = %q, want %q", want.section, want.key, got, want.value)
		}
	}
	if got := p.Unit.Values("Service", "SystemCallFilter"); !slices.Equal(got, []string{"@system-service", "~@privileged"}) {
		t.Errorf("SystemCallFilter = %q", got)
	}
	if got := p.Unit.Values("Service", "AmbientCapabilities"); got != nil {
		t.Errorf("AmbientCapabilities = %q on unprivileged ports", got)
	}

	// The open-file limit follows --max-agents and --http-max-conns.
	if p := plan(t, "--max-agents", "100", "--http-max-conns", "500"); p.NoFile != 3*100+500+1024 {
		t.Errorf("LimitNOFILE %d for 100 agents and 500 HTTP connections, want %d", p.NoFile, 3*100+500+1024)
	}
	// A port below 1024 is the one reason for a capability.
	for _, args := range [][]string{{"--listen", "0.0.0.0:443"}, {"--listen", "/ip4/0.0.0.0/tcp/443/ws"}, {"--http", ":80"}, {"--stun", "0.0.0.0:478"}} {
		p := plan(t, args...)
		if got := p.Unit.Values("Service", "AmbientCapabilities"); !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) ||
			!slices.Equal(p.Unit.Values("Service", "CapabilityBoundingSet"), []string{"CAP_NET_BIND_SERVICE"}) {
			t.Errorf("%q: AmbientCapabilities %q, bounding set %q; want CAP_NET_BIND_SERVICE alone", args, got,
				p.Unit.Values("Service", "CapabilityBoundingSet"))
		}
	}
	// A file a flag names is passed on absolute.
	t.Chdir("/etc")
	if p := plan(t, "--gossip-key-file", "readymesh/gossip.key"); !slices.Contains(p.Args, "--gossip-key-file=/etc/readymesh/gossip.key") {
		t.Errorf("args %q: want the key file's absolute path", p.Args)
	}
}

// TestServicePlanRefuses: what the installed broker could not run is
// refused before anything is installed, saying why.
func TestServicePlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--data", "/srv/broker"}, "--data: the installed broker keeps its data in /var/lib/readymesh/broker, the unit's StateDirectory"},
		{[]string{"--gossip-key-file", "/root/gossip.key"}, "--gossip-key-file /root/gossip.key: the service cannot see /root"},
		{[]string{"--gossip-key-file", "/tmp/k"}, "the service cannot see /tmp"},
		{[]string{"--max-agents", "0"}, "--max-agents 0: want at least 1"},
		{[]string{"--max-agents", "400000"}, "--max-agents 400000 needs 1205120 open files (3 per agent, 4096 HTTP connections and 1024 more), above the kernel's 1048576"},
		{[]string{"--listen", "0.0.0.0"}, `--listen: "0.0.0.0" is neither host:port nor a multiaddr with a tcp or udp port`},
		{[]string{"--stun", "/ip4/1.2.3.4"}, "--stun:"},
	} {
		_, _, err := parseInstall(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("install %q: %v, want %q", tc.args, err, tc.err)
		}
	}
	if _, _, err := parseInstall([]string{"--", "--name", "x"}); !errors.Is(err, errUsage) {
		t.Errorf("install with arguments: %v, want a usage error", err)
	}
}

// TestBrokerUnitVerifies: systemd's own parser accepts the unit without
// a warning, with and without a capability.
func TestBrokerUnitVerifies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	systemdtest.Verify(t, plan(t).Unit, exe)
	systemdtest.Verify(t, plan(t, "--listen", "0.0.0.0:443", "--name", "eu 1 (100%)").Unit, exe)
}

// testHost is a serviceHost on a fake systemctl whose unit directory,
// binary and data directory are under a temporary root; useradd is
// recorded among the systemctl calls.
func testHost(t *testing.T, fake *systemdtest.Fake, users map[string]bool) (*serviceHost, *servicePlan) {
	t.Helper()
	root := testdir.New(t)
	p := plan(t)
	p.Source = filepath.Join(root, "broker")
	if err := os.WriteFile(p.Source, []byte("#!broker"), 0o700); err != nil {
		t.Fatal(err)
	}
	p.Exe = filepath.Join(root, "opt", "broker")
	p.DataDir = filepath.Join(root, "lib", "readymesh", "broker")
	units := filepath.Join(root, "units")
	os.MkdirAll(units, 0o755)
	h := &serviceHost{
		units:      &systemd.Manager{Systemctl: fake.Run, Dir: units},
		euid:       func() int { return 0 },
		booted:     func() bool { return true },
		userExists: func(name string) (bool, error) { return users[name], nil },
		addUser: func(name, home string) error {
			fake.Calls = append(fake.Calls, "useradd "+name+" home "+home)
			users[name] = true
			return nil
		},
	}
	return h, p
}

// TestInstallService: install makes the user when missing, copies the
// binary, writes the unit, reloads, enables and starts it and checks it
// runs; uninstall removes unit and binary, and with --purge the data,
// keeping the user.
func TestInstallService(t *testing.T) {
	fake := &systemdtest.Fake{}
	h, p := testHost(t, fake, map[string]bool{})
	var out strings.Builder
	if err := installService(h, p, &out); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"show --property=LoadState --value readymesh-broker.service",
		"useradd readymesh home /var/lib/readymesh",
		"daemon-reload",
		"enable --now readymesh-broker.service",
		"is-active readymesh-broker.service",
	}
	if !slices.Equal(fake.Calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", fake.Calls, want)
	}
	installtest.File(t, "installed binary", p.Exe, []byte("#!broker"), 0)
	unitPath := filepath.Join(h.units.Dir, serviceUnit)
	installtest.File(t, "unit", unitPath, p.Unit.Bytes(), 0)
	for _, said := range []string{"made the system user readymesh\n", "installed and started readymesh-broker.service: " + p.Exe + " as readymesh",
		"meshctl login --credential " + filepath.Join(p.DataDir, "admin.credential")} {
		if !strings.Contains(out.String(), said) {
			t.Errorf("install said %q, without %q", out.String(), said)
		}
	}
	if err := installService(h, p, &out); err == nil || !strings.Contains(err.Error(), "readymesh-broker.service is installed already; run broker uninstall first") {
		t.Errorf("second install: %v", err)
	}

	// The broker ran: its data directory holds its key and store.
	os.MkdirAll(p.DataDir, 0o700)
	os.WriteFile(filepath.Join(p.DataDir, "broker.key"), []byte("k"), 0o600)
	fake.Calls = nil
	out.Reset()
	if err := uninstallService(h, p, false, &out); err != nil {
		t.Fatal(err)
	}
	if want := []string{"disable --now readymesh-broker.service", "daemon-reload", "reset-failed readymesh-broker.service"}; !slices.Equal(fake.Calls, want) {
		t.Errorf("uninstall's calls\n%q\nwant\n%q", fake.Calls, want)
	}
	installtest.Gone(t, "uninstall", unitPath, p.Exe)
	installtest.Kept(t, "uninstall without --purge", filepath.Join(p.DataDir, "broker.key"))
	if err := uninstallService(h, p, false, &out); err == nil || !strings.Contains(err.Error(), "the broker is not installed") {
		t.Errorf("uninstall of nothing: %v", err)
	}
	out.Reset()
	if err := uninstallService(h, p, true, &out); err != nil {
		t.Fatal(err)
	}
	installtest.Gone(t, "uninstall --purge (the data directory's empty parent)", filepath.Dir(p.DataDir))
	if !strings.Contains(out.String(), "removed the data directory "+p.DataDir+"\nkept the system user readymesh") {
		t.Errorf("uninstall --purge said %q", out.String())
	}

	// With the user there, install does not make it again.
	fake.Calls = nil
	if err := installService(h, p, &out); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(fake.Calls, func(c string) bool { return strings.HasPrefix(c, "useradd") }) {
		t.Errorf("calls %q: useradd of an existing user", fake.Calls)
	}
}

// TestInstallServiceFailures: each failure leaves what it says.
func TestInstallServiceFailures(t *testing.T) {
	t.Run("not root", func(t *testing.T) {
		fake := &systemdtest.Fake{}
		h, p := testHost(t, fake, map[string]bool{})
		h.euid = func() int { return 1000 }
		if err := installService(h, p, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "needs root") || len(fake.Calls) != 0 {
			t.Errorf("install as uid 1000: %v, calls %q; want refused before anything", err, fake.Calls)
		}
	})
	t.Run("broker dies at once", func(t *testing.T) {
		fake := &systemdtest.Fake{StartsAs: "activating"}
		h, p := testHost(t, fake, map[string]bool{"readymesh": true})
		err := installService(h, p, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "readymesh-broker.service is activating") || !strings.Contains(err.Error(), "the unit was removed again") {
			t.Errorf("install: %v", err)
		}
		installtest.Gone(t, "a failed start", filepath.Join(h.units.Dir, serviceUnit))
		if last := fake.Calls[len(fake.Calls)-3:]; !slices.Equal(last, []string{"disable --now readymesh-broker.service", "daemon-reload", "reset-failed readymesh-broker.service"}) {
			t.Errorf("calls %q: want the unit disabled and forgotten", fake.Calls)
		}
	})
	t.Run("purge of another directory", func(t *testing.T) {
		fake := &systemdtest.Fake{}
		h, p := testHost(t, fake, map[string]bool{})
		os.MkdirAll(p.DataDir, 0o700)
		precious := filepath.Join(p.DataDir, "thesis.tex")
		os.WriteFile(precious, []byte("x"), 0o600)
		err := uninstallService(h, p, true, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "not a broker's data directory") {
			t.Errorf("purge: %v", err)
		}
		installtest.Kept(t, "a purge of a directory that is not a broker's", precious)
	})
}

// TestInstallPrint: --print shows the plan and the unit.
func TestInstallPrint(t *testing.T) {
	var b strings.Builder
	if err := plan(t, "--max-agents", "2000").print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"binary     /opt/readymesh/bin/broker  (copied from ",
		"files      11120 (2000 agents × 3, 4096 HTTP connections, 1024 more)\n",
		"unit       /etc/systemd/system/readymesh-broker.service\n",
		"\nExecStart=/opt/readymesh/bin/broker run --data /var/lib/readymesh/broker\n",
		"\nLimitNOFILE=11120\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("print:\n%s\nwithout %q", b.String(), want)
		}
	}
}
