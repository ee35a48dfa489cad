package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/localdb"

	"github.com/readymesh/readymesh/integration/testdir"
)

// TestInstallPrint: --print plans for any system without installing; the
// run flags given reach the service's command line, the others do not.
func TestInstallPrint(t *testing.T) {
	out, _, err := run(t, "install", "--print", "--os", "windows", "--token", "rme1_x", "--name", "pc-1",
		"--interval", "30m", "--record-input", "--consent", "window")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`command    "C:\Program Files\readymesh\sessiond.exe" run --state C:\ProgramData\readymesh\sessiond --log C:\ProgramData\readymesh\sessiond\sessiond.log --consent=window --interval=30m0s --record-input=true` + "\n",
		"recovery   restart after 5s, 30s, 1m0s",
		"acl        O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA) on C:\\ProgramData\\readymesh, C:\\ProgramData\\readymesh\\sessiond\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install --print --os windows printed\n%s\nwithout %q", out, want)
		}
	}
	if strings.Contains(out, "rme1_x") || strings.Contains(out, "pc-1") {
		t.Errorf("the token or name reached the service's command line:\n%s", out)
	}

	out, _, err = run(t, "install", "--print", "--os", "linux", "--consent", "session", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"unit       /etc/systemd/system/readymesh-sessiond.service\n",
		"\nExecStart=/opt/readymesh/bin/sessiond run --state /var/lib/readymesh/sessiond --consent=session --log-level=debug\n",
		"\nRestart=on-failure\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install --print --os linux printed\n%s\nwithout %q", out, want)
		}
	}

	out, _, err = run(t, "install", "--print", "--os", "darwin", "--state", "/opt/rm/state", "--session-addr", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"state      /opt/rm/state\n", "<string>--session-addr=:7000</string>", "<key>KeepAlive</key>"} {
		if !strings.Contains(out, want) {
			t.Errorf("install --print --os darwin printed\n%s\nwithout %q", out, want)
		}
	}
}

// TestInstallHere: --print plans for this system, with relative paths
// made absolute.
func TestInstallHere(t *testing.T) {
	dir := testdir.New(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(wd, "inv.json") // need not exist: only planned
	out, _, err := run(t, "install", "--print", "--state", dir, "--inventory", "inv.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "--inventory="+inv) || !strings.Contains(out, "state      "+dir+"\n") {
		t.Errorf("install --print\n%s\nwithout the state %s and the absolute --inventory=%s", out, dir, inv)
	}
}

// TestCheckEnrolment: enrolment flags that cannot work are refused before
// anything is installed.
func TestCheckEnrolment(t *testing.T) {
	text := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(),
		Broker: wire.BrokerInfo{PeerID: "12D3KooWB", Addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1"}}}.String()
	for _, tc := range []struct {
		cfg sessiond.EnrollConfig
		err string
	}{
		{sessiond.EnrollConfig{}, ""},
		{sessiond.EnrollConfig{Token: text, Name: "pc-1"}, ""},
		{sessiond.EnrollConfig{Name: "pc-1"}, "--name and --broker go with --token"},
		{sessiond.EnrollConfig{Token: text}, "install needs --name with --token"},
		{sessiond.EnrollConfig{Token: "rml1_nope", Name: "pc-1"}, "--token:"},
		{sessiond.EnrollConfig{Token: text, Name: "bad name/"}, "--name:"},
	} {
		err := checkEnrolment(tc.cfg)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkEnrolment(%+v) = %v, want %q", tc.cfg, err, tc.err)
		}
	}
}

// TestReuseEnrolment: install without a token runs on the enrolment the
// state directory holds, and refuses one that holds none.
func TestReuseEnrolment(t *testing.T) {
	e := &env{stdout: &strings.Builder{}}
	dir := testdir.New(t)
	err := e.enrollOrReuse(sessiond.EnrollConfig{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "install needs --token and --name: "+dir+" holds no enrolled agent") {
		t.Errorf("reuse of an empty directory: %v", err)
	}
	db, err := localdb.Open(filepath.Join(dir, sessiond.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = e.enrollOrReuse(sessiond.EnrollConfig{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "not enrolled") {
		t.Errorf("reuse of a directory whose database holds no enrolment: %v", err)
	}
	if db, err = localdb.Open(filepath.Join(dir, sessiond.DBFile)); err != nil {
		t.Fatal(err)
	}
	db.SetEnrolment(localdb.Enrolment{MachineID: "12D3KooWM", Name: "pc-1", Client: "acme", EnrolledAt: time.Now()})
	db.Close()
	if err := e.enrollOrReuse(sessiond.EnrollConfig{StateDir: dir}); err != nil {
		t.Fatal(err)
	}
	if got := e.stdout.(*strings.Builder).String(); !strings.Contains(got, "using the enrolment in "+dir+": pc-1 in client acme as machine 12D3KooWM") {
		t.Errorf("reuse said %q", got)
	}
}
