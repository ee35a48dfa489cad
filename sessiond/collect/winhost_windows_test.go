package collect

import (
	"context"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/internal/wintest"
)

// These tests run the Windows collectors against the system they run on.
// Under Wine (see ../shared/TESTING.md, "Windows binaries under Wine"):
//
//	WINEPREFIX=… WINEDEBUG=-all GOOS=windows go test -exec wine ./sessiond/collect/
//
// the registry, RtlGetVersion, NtQuerySystemInformation, GetSystemTimes
// and WTSEnumerateSessions work; the Windows Update Agent does not, and
// the tests check that its failure is reported as a collector error.

func TestHostSnapshot(t *testing.T) {
	cfg := Config{AgentVersion: "test", AptTimeout: 30 * time.Second, Logger: testLogger(t)}
	start := time.Now()
	s := Collect(context.Background(), Host(cfg), time.Now())
	errs := map[string]string{}
	for _, e := range s.CollectorErrs {
		t.Logf("collector %s: %s", e.Collector, e.Error)
		errs[e.Collector] = e.Error
	}
	t.Logf("os %+v, hostname %q, boot %q, %d packages, %d pending updates, addresses %v (took %v)",
		s.OS, s.Hostname, s.BootID, len(s.Packages), len(s.PendingUpdates), s.Addresses, time.Since(start))

	for _, name := range []string{"agent", "os", "hostname", "boot_id", "packages", "addresses"} {
		if errs[name] != "" {
			t.Errorf("collector %s failed: %s", name, errs[name])
		}
	}
	checkHostOS(t, s.OS)
	if want, _ := os.Hostname(); s.Hostname != want || want == "" {
		t.Errorf("hostname %q, want %q", s.Hostname, want)
	}
	if _, err := time.Parse(time.RFC3339, s.BootID); err != nil {
		t.Errorf("boot id %q: %v", s.BootID, err)
	}
	checkHostUpdates(t, s, errs["updates"])
	if err := s.Validate(); err != nil {
		t.Errorf("the broker would refuse the snapshot: %v", err)
	}
}

// checkHostOS compares the collected OS with the registry, read here on
// its own.
func checkHostOS(t *testing.T, o wire.OS) {
	t.Helper()
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, currentVersionKey, registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	product, _, err := k.GetStringValue("ProductName")
	if err != nil {
		t.Fatal(err)
	}
	if o.Family != "windows" || o.ID != "windows" {
		t.Errorf("family %q id %q, want windows", o.Family, o.ID)
	}
	if o.Name != product && o.Name != windows11Name(product) {
		t.Errorf("name %q, registry's ProductName %q", o.Name, product)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(o.Version) {
		t.Errorf("version %q is not major.minor.build", o.Version)
	}
	v := windows.RtlGetVersion()
	if o.Kernel != kernelVersion(v.MajorVersion, v.MinorVersion, v.BuildNumber) || o.Kernel == "0.0.0" {
		t.Errorf("kernel %q, RtlGetVersion %d.%d.%d", o.Kernel, v.MajorVersion, v.MinorVersion, v.BuildNumber)
	}
	if !strings.HasPrefix(o.Build, strings.Split(o.Version, ".")[2]) {
		t.Errorf("build %q does not start with the version's build %q", o.Build, o.Version)
	}
	if o.Arch == "" {
		t.Error("no arch")
	}
}

// checkHostUpdates checks the updates collector's answer: under Wine the
// Windows Update Agent cannot answer, and the snapshot must say why rather
// than claim no pending updates.
func checkHostUpdates(t *testing.T, s *wire.Snapshot, updatesErr string) {
	t.Helper()
	if updatesErr != "" {
		if s.PendingUpdates != nil {
			t.Errorf("updates failed (%s) but pending updates are %v, want nil", updatesErr, s.PendingUpdates)
		}
		if !strings.Contains(updatesErr, "Windows Update") {
			t.Errorf("updates error %q does not say it is about Windows Update", updatesErr)
		}
		return
	}
	if wintest.UnderWine() {
		t.Fatalf("the Windows Update Agent answered under Wine: %v", s.PendingUpdates)
	}
	for _, u := range s.PendingUpdates {
		if u.ID == "" || u.Source != "windows-update" {
			t.Errorf("pending update %+v", u)
		}
	}
}

func TestCOMSearcherFails(t *testing.T) {
	if !wintest.UnderWine() {
		t.Skip("a real Windows Update search needs Wine's missing agent to fail quickly; TestHostSnapshot covers real Windows")
	}
	ups, err := comSearcher{}.Search(wuaCriteria)
	t.Logf("search under Wine: %v", err)
	if err == nil {
		t.Fatalf("search succeeded under Wine with %d updates", len(ups))
	}
}

func TestBootIDStable(t *testing.T) {
	var ids []string
	for range 3 {
		var s wire.Snapshot
		if err := collectWindowsBootID(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.BootID)
		time.Sleep(1100 * time.Millisecond) // across a second boundary
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("boot ids differ within one boot: %q", ids)
	}
	boot, err := time.Parse(time.RFC3339, ids[0])
	if err != nil || boot.After(time.Now()) || boot.Year() < 2000 {
		t.Fatalf("boot id %q is not a past boot time (%v)", ids[0], err)
	}
}

func TestLoad1Windows(t *testing.T) {
	for i := range 3 {
		l, err := Load1()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load %d: %.3f", i, l)
		if !(l >= 0 && l <= 1) {
			t.Fatalf("load %v outside [0, 1]", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUsersWindows(t *testing.T) {
	users, err := Users()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("users: %q", users)
	if users == nil {
		t.Error("nil list, want an empty one when nobody is logged on")
	}
	if !slices.IsSorted(users) || len(slices.Compact(slices.Clone(users))) != len(users) {
		t.Errorf("users %q not sorted and unique", users)
	}
	// Wine lists no sessions, but names the user of the current one; so
	// does Windows for a test run from a logon session.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	const currentSession = 0xffffffff
	name, err1 := wtsString(currentSession, wtsUserName)
	domain, err2 := wtsString(currentSession, wtsDomainName)
	if err1 != nil || err2 != nil || !strings.EqualFold(domain+`\`+name, me.Username) {
		t.Errorf("current session's user %q\\%q (%v, %v), want %q", domain, name, err1, err2, me.Username)
	}
}
