package collect

import (
	"context"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestLinuxOnThisMachine runs every real collector on the machine the test
// runs on (a Debian system with dpkg) and checks the result is sensible.
func TestLinuxOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the Linux collectors describe a Linux machine")
	}
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("this test expects a dpkg-based system")
	}
	cfg := agentConfig()
	cfg.Logger = testLogger(t)
	start := time.Now()
	s := Collect(context.Background(), Linux(cfg), start)
	t.Logf("collected in %v: host %q os %+v, %d packages, %d pending (%d security), addresses %q, errors %+v",
		time.Since(start), s.Hostname, s.OS, len(s.Packages), len(s.PendingUpdates), countSecurity(s.PendingUpdates), s.Addresses, s.CollectorErrs)
	if len(s.CollectorErrs) != 0 {
		t.Errorf("collector errors: %+v", s.CollectorErrs)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("snapshot does not validate: %v", err)
	}
	if s.Hostname == "" || s.BootID == "" {
		t.Errorf("hostname %q, boot id %q", s.Hostname, s.BootID)
	}
	if s.OS.Family != "linux" || s.OS.ID == "" || s.OS.Name == "" || s.OS.Kernel == "" || s.OS.Arch != runtime.GOARCH {
		t.Errorf("os: %+v", s.OS)
	}
	if len(s.Packages) == 0 {
		t.Error("no packages")
	}
	for _, a := range s.Addresses {
		if ip, err := netip.ParseAddr(a); err != nil || ip.IsLoopback() {
			t.Errorf("address %q", a)
		}
	}
	for _, u := range s.PendingUpdates {
		if u.ID == "" || u.Source != "apt" {
			t.Errorf("update %+v", u)
		}
	}
}

func countSecurity(ups []wire.PendingUpdate) int {
	n := 0
	for _, u := range ups {
		if u.Security {
			n++
		}
	}
	return n
}
