package collect

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseDpkg(t *testing.T) {
	out := "adduser\t3.134\tii \n" +
		"libc6:i386\t2.36-9+deb12u7\tii \n" +
		"oldpkg\t1.0-1\trc \n" + // removed, config files left
		"halfdone\t2.0\tiU \n" +
		"trig\t1.1\tit \n" +
		"held\t4.0\thi \n" +
		"\t1.0\tii \n" +
		"nostatus\t0.1\n" +
		"garbage line\n"
	want := []wire.Package{
		{Name: "adduser", Version: "3.134"},
		{Name: "libc6:i386", Version: "2.36-9+deb12u7"},
		{Name: "trig", Version: "1.1"},
		{Name: "held", Version: "4.0"},
		{Name: "nostatus", Version: "0.1"},
	}
	if got := parseDpkg(out); !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseRPM(t *testing.T) {
	out := "bash\t5.2.26-3.fc40\n" +
		"shadow-utils\t2:4.15.1-2.fc40\n" +
		"gpg-pubkey\ta15b79cc-63d04c2c\n" +
		"junk\n"
	want := []wire.Package{
		{Name: "bash", Version: "5.2.26-3.fc40"},
		{Name: "shadow-utils", Version: "2:4.15.1-2.fc40"},
	}
	if got := parseRPM(out); !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestPackagesToolChoice(t *testing.T) {
	tests := []struct {
		name    string
		tools   map[string]string
		want    []wire.Package
		wantErr string
	}{
		{
			name:  "dpkg wins over rpm",
			tools: map[string]string{"dpkg-query": `printf 'a\t1\tii \n'`, "rpm": `printf 'b\t2\n'`},
			want:  []wire.Package{{Name: "a", Version: "1"}},
		},
		{
			name:  "rpm without dpkg",
			tools: map[string]string{"rpm": `printf 'b\t2\n'`},
			want:  []wire.Package{{Name: "b", Version: "2"}},
		},
		{
			name:    "neither",
			tools:   map[string]string{},
			wantErr: "neither dpkg-query nor rpm",
		},
		{
			name:    "dpkg fails",
			tools:   map[string]string{"dpkg-query": "echo 'database locked' >&2; exit 2"},
			wantErr: "exit status 2: database locked",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMachine(t, Config{})
			m.lookPath = fakeTools(t, tt.tools)
			var s wire.Snapshot
			err := m.collectPackages(context.Background(), &s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(s.Packages, tt.want) {
				t.Errorf("got %+v, %v; want %+v", s.Packages, err, tt.want)
			}
		})
	}
}

// TestDpkgBelowRoot runs the real dpkg-query on a status file in a
// fixture tree.
func TestDpkgBelowRoot(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("dpkg-query is not installed")
	}
	status := "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n" +
		"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 0.9\n\n"
	root := writeTree(t, map[string]string{
		"var/lib/dpkg/status":    status,
		"var/lib/dpkg/available": "",
		"var/lib/dpkg/info/x":    "",
		"var/lib/dpkg/updates/x": "",
	})
	m := testMachine(t, Config{Root: root})
	var s wire.Snapshot
	if err := m.collectPackages(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	want := []wire.Package{{Name: "hello", Version: "2.10-3"}}
	if !slices.Equal(s.Packages, want) {
		t.Errorf("got %+v, want %+v", s.Packages, want)
	}
}
