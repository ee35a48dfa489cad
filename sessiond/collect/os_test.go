package collect

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]string
	}{
		{
			name: "debian",
			text: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
			want: map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian"},
		},
		{
			name: "alpine unquoted",
			text: "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n",
			want: map[string]string{"NAME": "Alpine Linux", "ID": "alpine", "VERSION_ID": "3.19.1", "PRETTY_NAME": "Alpine Linux v3.19"},
		},
		{
			name: "comments blanks and CRLF",
			text: "# written by hand\r\n\r\nID=fedora\r\n  VERSION_ID=40  \r\n",
			want: map[string]string{"ID": "fedora", "VERSION_ID": "40"},
		},
		{
			name: "single quotes are literal",
			text: `NAME='My \"OS\"'`,
			want: map[string]string{"NAME": `My \"OS\"`},
		},
		{
			name: "escapes in double quotes",
			text: `PRETTY_NAME="A \"quoted\" \$name with \\ and \n"`,
			want: map[string]string{"PRETTY_NAME": `A "quoted" $name with \ and \n`},
		},
		{
			name: "unclosed quote kept as written",
			text: `NAME="Broken`,
			want: map[string]string{"NAME": `"Broken`},
		},
		{
			name: "not assignments",
			text: "just text\n=value\n1ID=x\nBAD KEY=x\nID=ok\n",
			want: map[string]string{"ID": "ok"},
		},
		{
			name: "later value wins, empty allowed",
			text: "ID=a\nID=b\nVARIANT=\n",
			want: map[string]string{"ID": "b", "VARIANT": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseOSRelease(tt.text)
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOSIdentityDefaults(t *testing.T) {
	id, name, version := osIdentity(map[string]string{"NAME": "Foo"})
	if id != "linux" || name != "Foo" || version != "" {
		t.Errorf("got %q %q %q", id, name, version)
	}
	id, name, _ = osIdentity(nil)
	if id != "linux" || name != "Linux" {
		t.Errorf("empty: got %q %q", id, name)
	}
}

func TestCollectOSFromRoot(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    wire.OS
		wantErr string
	}{
		{
			name: "etc",
			files: map[string]string{
				"etc/os-release":            "ID=ubuntu\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\nVERSION_ID=\"24.04\"\n",
				"usr/lib/os-release":        "ID=ignored\n",
				"proc/sys/kernel/osrelease": "6.8.0-31-generic\n",
			},
			want: wire.OS{Family: "linux", ID: "ubuntu", Name: "Ubuntu 24.04 LTS", Version: "24.04", Kernel: "6.8.0-31-generic"},
		},
		{
			name: "usr lib fallback",
			files: map[string]string{
				"usr/lib/os-release":        "ID=arch\nNAME=\"Arch Linux\"\n",
				"proc/sys/kernel/osrelease": "6.9.1-arch1-1",
			},
			want: wire.OS{Family: "linux", ID: "arch", Name: "Arch Linux", Kernel: "6.9.1-arch1-1"},
		},
		{
			name:    "nothing",
			files:   map[string]string{"tmp/x": ""},
			want:    wire.OS{Family: "linux", ID: "linux", Name: "Linux"},
			wantErr: "os-release: none of",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMachine(t, Config{Root: writeTree(t, tt.files)})
			var s wire.Snapshot
			err := m.collectOS(context.Background(), &s)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			tt.want.Arch = s.OS.Arch
			if s.OS != tt.want || s.OS.Arch == "" {
				t.Errorf("got %+v, want %+v", s.OS, tt.want)
			}
		})
	}
}

// FuzzParseOSRelease checks that parsing never panics, yields only
// assignable keys and one-line values, and that every value survives being
// written back double-quoted and parsed again.
func FuzzParseOSRelease(f *testing.F) {
	f.Add("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n")
	f.Add(`NAME='x' ID="a\"b\\c\$d"` + "\n#c\n=\nA=\"")
	f.Add("ID=\"\"\"\nX='\n")
	f.Fuzz(func(t *testing.T, text string) {
		kv := parseOSRelease(text)
		var b strings.Builder
		for k, v := range kv {
			if !validKey(k) || strings.ContainsAny(v, "\n") {
				t.Fatalf("bad pair %q=%q", k, v)
			}
			b.WriteString(k + "=" + quoteDouble(v) + "\n")
		}
		again := parseOSRelease(b.String())
		for k, v := range kv {
			if strings.ContainsAny(v, "\r") || v != strings.TrimSpace(v) {
				continue // not representable after line trimming
			}
			if again[k] != v {
				t.Fatalf("%s: %q became %q", k, v, again[k])
			}
		}
	})
}

// quoteDouble writes v as an os-release double-quoted value.
func quoteDouble(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}
