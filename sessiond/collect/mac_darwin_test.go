package collect

import (
	"context"
	"net/netip"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// TestMacOnThisMachine runs every real collector and heartbeat signal on
// the Mac the test runs on and checks the result is sensible. It needs a
// Mac; the parsers behind it are tested everywhere with recorded outputs.
// softwareupdate asks Apple's catalog, so without a network the updates
// collector's error is logged, not failed on.
func TestMacOnThisMachine(t *testing.T) {
	cfg := agentConfig()
	cfg.Logger = testLogger(t)
	cfg.AptTimeout = 3 * time.Minute
	start := time.Now()
	s := Collect(context.Background(), Host(cfg), start)
	t.Logf("collected in %v: host %q boot %q os %+v, %d packages, %d pending (%d security), addresses %q, errors %+v",
		time.Since(start), s.Hostname, s.BootID, s.OS, len(s.Packages), len(s.PendingUpdates),
		countSecurity(s.PendingUpdates), s.Addresses, s.CollectorErrs)
	for _, e := range s.CollectorErrs {
		if e.Collector == "updates" {
			t.Logf("updates not collected (no network?): %s", e.Error)
			continue
		}
		t.Errorf("collector error: %+v", e)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("snapshot does not validate: %v", err)
	}
	if s.OS.Family != "darwin" || s.OS.ID != "macos" || s.OS.Version == "" || s.OS.Build == "" ||
		s.OS.DisplayVersion == "" || s.OS.Kernel == "" || s.OS.Arch == "" {
		t.Errorf("os: %+v", s.OS)
	}
	uuid := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`)
	if !uuid.MatchString(s.BootID) {
		t.Errorf("boot id %q is not kern.bootsessionuuid", s.BootID)
	}
	if len(s.Packages) == 0 {
		t.Error("no applications")
	}
	for _, a := range s.Addresses {
		if ip, err := netip.ParseAddr(a); err != nil || ip.IsLoopback() {
			t.Errorf("address %q", a)
		}
	}
	load, err := Load1()
	if err != nil || load < 0 || load > float64(runtime.NumCPU())*100 {
		t.Errorf("load %v, %v", load, err)
	}
	users, err := Users()
	t.Logf("load %.2f, users %q", load, users)
	if err != nil || users == nil {
		t.Errorf("users %q, %v", users, err)
	}
}
