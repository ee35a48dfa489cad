package collect

import (
	"context"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseSwVers(t *testing.T) {
	tests := []struct {
		file string
		want swVers
		os   wire.OS
	}{
		{
			file: "sw_vers_14.2.1.txt",
			want: swVers{Name: "macOS", Version: "14.2.1", Build: "23C71"},
			os:   wire.OS{ID: "macos", Name: "macOS 14.2.1", Version: "14.2.1", Build: "23C71", DisplayVersion: "Sonoma"},
		},
		{
			file: "sw_vers_15.3.1.txt",
			want: swVers{Name: "macOS", Version: "15.3.1", Build: "24D70"},
			os:   wire.OS{ID: "macos", Name: "macOS 15.3.1", Version: "15.3.1", Build: "24D70", DisplayVersion: "Sequoia"},
		},
		{
			file: "sw_vers_13.4.1c.txt",
			want: swVers{Name: "macOS", Version: "13.4.1", Extra: "(c)", Build: "22F770820d"},
			os:   wire.OS{ID: "macos", Name: "macOS 13.4.1 (c)", Version: "13.4.1", Build: "22F770820d", DisplayVersion: "Ventura"},
		},
		{
			file: "sw_vers_10.15.7.txt",
			want: swVers{Name: "Mac OS X", Version: "10.15.7", Build: "19H2"},
			os:   wire.OS{ID: "macos", Name: "Mac OS X 10.15.7", Version: "10.15.7", Build: "19H2", DisplayVersion: "Catalina"},
		},
		{
			file: "sw_vers_26.4beta.txt",
			want: swVers{Name: "macOS", Version: "26.4", Build: "25E5207k"},
			os:   wire.OS{ID: "macos", Name: "macOS 26.4", Version: "26.4", Build: "25E5207k", DisplayVersion: "Tahoe"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			v, err := parseSwVers(readDarwin(t, tt.file))
			if err != nil || v != tt.want {
				t.Fatalf("got %+v, %v; want %+v", v, err, tt.want)
			}
			var o wire.OS
			fillMacOS(&o, v)
			if o != tt.os {
				t.Errorf("os %+v\nwant %+v", o, tt.os)
			}
		})
	}
}

func TestParseSwVersMalformed(t *testing.T) {
	tests := []struct {
		name, text string
		want       swVers // when no error is expected
		wantErr    string
	}{
		{name: "empty", text: "", wantErr: "no ProductVersion"},
		{name: "garbage", text: "\x00\x01binary\nsw_vers: command not found\n", wantErr: "no ProductVersion"},
		{name: "not a version", text: "ProductVersion:\t\tfourteen\n", wantErr: "not a version"},
		{name: "empty part", text: "ProductVersion:\t\t14..1\n", wantErr: "not a version"},
		{name: "signed part", text: "ProductVersion:\t\t14.+2\n", wantErr: "not a version"},
		{name: "overflowing", text: "ProductVersion:\t\t99999999999999999999999.1\n", wantErr: "not a version"},
		{
			name:    "huge value skipped",
			text:    "ProductVersion:\t\t" + strings.Repeat("1", 10000) + "\n",
			wantErr: "no ProductVersion",
		},
		{
			name:    "control characters skipped",
			text:    "ProductVersion:\t\t14.2\x1b[2J\n",
			wantErr: "no ProductVersion",
		},
		{
			name: "noise around, CRLF, spaces instead of tabs, no name",
			text: "warning: something\r\nProductVersion:   14.5\r\nnonsense line\r\nBuildVersion: 23F79\r\nUnknownKey:\tx\r\n",
			want: swVers{Version: "14.5", Build: "23F79"},
		},
		{
			name: "value with a colon kept whole",
			text: "ProductName:\tmacOS: Server\nProductVersion:\t11\n",
			want: swVers{Name: "macOS: Server", Version: "11"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseSwVers(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want error %q", v, err, tt.wantErr)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Errorf("got %+v, %v; want %+v", v, err, tt.want)
			}
		})
	}
}

func TestMacReleaseName(t *testing.T) {
	for version, want := range map[string]string{
		"11.7.10": "Big Sur", "12.0": "Monterey", "13.4.1": "Ventura", "14.2.1": "Sonoma",
		"15": "Sequoia", "26.3.1": "Tahoe", "10.14.6": "Mojave", "10.16": "Big Sur",
		"10.8.5": "", "16.0": "", "27.0": "", "": "", "x": "", "14.a": "",
	} {
		if got := macReleaseName(version); got != want {
			t.Errorf("macReleaseName(%q) = %q, want %q", version, got, want)
		}
	}
}

func TestCollectMacOS(t *testing.T) {
	tests := []struct {
		name    string
		scripts map[string]string
		kernel  fakeKernel
		want    wire.OS
		wantErr string
	}{
		{
			name:    "sequoia",
			scripts: map[string]string{"sw_vers": "cat '" + darwinData(t, "sw_vers_15.3.1.txt") + "'"},
			kernel:  fakeKernel{rel: "24.3.0"},
			want: wire.OS{Family: "darwin", ID: "macos", Name: "macOS 15.3.1", Version: "15.3.1",
				Kernel: "24.3.0", Arch: "arm64", DisplayVersion: "Sequoia", Build: "24D70"},
		},
		{
			name:    "no sw_vers: the kernel still read",
			scripts: map[string]string{},
			kernel:  fakeKernel{rel: "24.3.0"},
			want:    wire.OS{Family: "darwin", Kernel: "24.3.0", Arch: "arm64"},
			wantErr: "sw_vers",
		},
		{
			name:    "sw_vers fails",
			scripts: map[string]string{"sw_vers": "echo 'sw_vers: broken plist' >&2; exit 1"},
			kernel:  fakeKernel{rel: "24.3.0"},
			want:    wire.OS{Family: "darwin", Kernel: "24.3.0", Arch: "arm64"},
			wantErr: "broken plist",
		},
		{
			name:    "sysctl fails: sw_vers still read",
			scripts: map[string]string{"sw_vers": "cat '" + darwinData(t, "sw_vers_14.2.1.txt") + "'"},
			kernel:  fakeKernel{err: errBoom},
			want: wire.OS{Family: "darwin", ID: "macos", Name: "macOS 14.2.1", Version: "14.2.1",
				Arch: "arm64", DisplayVersion: "Sonoma", Build: "23C71"},
			wantErr: "kernel release: boom",
		},
		{
			name:    "sw_vers floods its output",
			scripts: map[string]string{"sw_vers": "yes ProductVersion:\t14.2"},
			kernel:  fakeKernel{rel: "24.3.0"},
			want:    wire.OS{Family: "darwin", Kernel: "24.3.0", Arch: "arm64"},
			wantErr: "larger than its bound",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMac(t, Config{}, tt.kernel, tt.scripts)
			var s wire.Snapshot
			err := m.collectMacOS(context.Background(), &s)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if s.OS != tt.want {
				t.Errorf("os %+v\nwant %+v", s.OS, tt.want)
			}
		})
	}
}

// FuzzParseSwVers checks that any output parses without panicking, and
// that what it accepts has a version of numbers and dots and short fields.
func FuzzParseSwVers(f *testing.F) {
	f.Add("ProductName:\t\tmacOS\nProductVersion:\t\t13.4.1\nProductVersionExtra:\t(c)\nBuildVersion:\t\t22F770820d\n")
	f.Add("ProductVersion:\t1.2.3.4.5\n")
	f.Add("ProductVersion:")
	f.Fuzz(func(t *testing.T, text string) {
		v, err := parseSwVers(text)
		if err != nil {
			return
		}
		if _, ok := macMajorMinor(v.Version); !ok {
			t.Fatalf("accepted version %q", v.Version)
		}
		for _, f := range []string{v.Name, v.Version, v.Extra, v.Build} {
			if len(f) > macFieldMax || hasControl(f) {
				t.Fatalf("accepted field %q", f)
			}
		}
	})
}
