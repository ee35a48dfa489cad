package collect

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

// aptSample is trimmed from a real Debian 12 simulation.
const aptSample = `NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages will be upgraded:
  base-files bash libgnutls30 perl
4 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst base-files [12.4+deb12u11] (12.4+deb12u14 Debian:12.14/oldstable [amd64])
Conf base-files (12.4+deb12u14 Debian:12.14/oldstable [amd64])
Inst libperl5.36 [5.36.0-7+deb12u2] (5.36.0-7+deb12u3 Debian:12.14/oldstable [amd64]) [perl:amd64 ]
Inst libgnutls30 [3.7.9-2+deb12u6] (3.7.9-2+deb12u7 Debian-Security:12/oldstable-security [amd64])
Inst linux-image-6.1.0-31-amd64 (6.1.128-1 Debian:12.14/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst libssl3:i386 [3.0.15-1~deb12u1] (3.0.16-1~deb12u1 Ubuntu:22.04/jammy-security [i386]) []
Remv oldthing [1.0]
Inst
Inst [broken] (1.0)
Inst noparen [1.0]
`

func TestParseAptSim(t *testing.T) {
	want := []wire.PendingUpdate{
		{ID: "base-files", Version: "12.4+deb12u14", Source: "apt"},
		{ID: "libperl5.36", Version: "5.36.0-7+deb12u3", Source: "apt"},
		{ID: "libgnutls30", Version: "3.7.9-2+deb12u7", Source: "apt", Security: true},
		{ID: "linux-image-6.1.0-31-amd64", Version: "6.1.128-1", Source: "apt", Security: true},
		{ID: "libssl3:i386", Version: "3.0.16-1~deb12u1", Source: "apt", Security: true},
		{ID: "noparen", Source: "apt"},
	}
	got := parseAptSim(aptSample)
	if !slices.EqualFunc(got, want, sameUpdate) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseAptSimNothing(t *testing.T) {
	out := "Reading package lists...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
	if got := parseAptSim(out); len(got) != 0 {
		t.Errorf("got %+v", got)
	}
}

func sameUpdate(a, b wire.PendingUpdate) bool {
	return a.ID == b.ID && a.Version == b.Version && a.Source == b.Source &&
		a.Security == b.Security && a.FirstSeen == nil && b.FirstSeen == nil
}

func TestCollectUpdates(t *testing.T) {
	tests := []struct {
		name    string
		tools   map[string]string
		timeout time.Duration
		want    []wire.PendingUpdate
		wantErr string
	}{
		{
			name:  "apt",
			tools: map[string]string{"apt-get": "cat <<'X'\n" + aptSample + "X", "dnf": "exit 1"},
			want:  parseAptSim(aptSample),
		},
		{
			name:    "apt fails",
			tools:   map[string]string{"apt-get": "echo 'E: broken packages' >&2; exit 100"},
			wantErr: "apt-get: exit status 100: E: broken packages",
		},
		{
			name:    "apt hangs",
			tools:   map[string]string{"apt-get": "exec sleep 30"},
			timeout: 100 * time.Millisecond,
			wantErr: "not done after 100ms",
		},
		{
			name:  "dnf with updates exits 100",
			tools: map[string]string{"dnf": "cat <<'X'\n" + dnfSample + "X\nexit 100"},
			want:  parseCheckUpdate(dnfSample, "dnf"),
		},
		{
			name:  "yum with none",
			tools: map[string]string{"yum": "exit 0"},
		},
		{
			name:    "dnf fails",
			tools:   map[string]string{"dnf": "echo 'Error: Cache-only enabled but no cache' >&2; exit 1"},
			wantErr: "no cache",
		},
		{
			name:    "none",
			tools:   map[string]string{},
			wantErr: "no supported package manager",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMachine(t, Config{AptTimeout: tt.timeout})
			m.lookPath = fakeTools(t, tt.tools)
			var s wire.Snapshot
			err := m.collectUpdates(context.Background(), &s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.EqualFunc(s.PendingUpdates, tt.want, sameUpdate) {
				t.Errorf("got %+v, %v; want %+v", s.PendingUpdates, err, tt.want)
			}
		})
	}
}

func TestCollectUpdatesRefusesOtherRoot(t *testing.T) {
	m := testMachine(t, Config{Root: testdir.New(t)})
	m.lookPath = func(string) (string, error) { t.Fatal("looked for a tool"); return "", nil }
	var s wire.Snapshot
	if err := m.collectUpdates(context.Background(), &s); err == nil {
		t.Fatal("no error")
	}
}

// FuzzParseAptSim checks that any output parses without panicking into
// updates that name a package and come from apt.
func FuzzParseAptSim(f *testing.F) {
	f.Add(aptSample)
	f.Add("Inst a (")
	f.Add("Inst a [1] (2 security)) ((")
	f.Fuzz(func(t *testing.T, out string) {
		for _, u := range parseAptSim(out) {
			if u.ID == "" || u.Source != "apt" || strings.ContainsAny(u.ID, " \n()[]") {
				t.Fatalf("bad update %+v", u)
			}
			if strings.ContainsAny(u.Version, " \n)") {
				t.Fatalf("bad version %+v", u)
			}
		}
	})
}
