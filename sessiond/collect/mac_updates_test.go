package collect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseSoftwareUpdate(t *testing.T) {
	tests := []struct {
		name      string
		stdout    string // testdata files
		stderr    string
		want      []macUpdate
		security  []bool
		wantSkips int
	}{
		{
			name:   "none",
			stdout: "softwareupdate_none.stdout", stderr: "softwareupdate_none.stderr",
			want: []macUpdate{},
		},
		{
			name:   "tahoe with a background security improvement",
			stdout: "softwareupdate_tahoe.stdout", stderr: "softwareupdate_list.stderr",
			want: []macUpdate{
				{Label: "Command Line Tools for Xcode 26.3-26.3", Title: "Command Line Tools for Xcode 26.3", Version: "26.3", Recommended: true},
				{Label: "macOS Background Security Improvement 26.3.1 (a)-25D771280a", Title: "macOS Background Security Improvement 26.3.1 (a)",
					Version: "26.3.1 (a)", Recommended: true, Action: "restart"},
				{Label: "macOS Tahoe 26.4-25E246", Title: "macOS Tahoe 26.4", Version: "26.4", Recommended: true, Action: "restart"},
			},
			security: []bool{false, true, false},
		},
		{
			name:   "ventura with a rapid security response and log noise",
			stdout: "softwareupdate_ventura.stdout", stderr: "softwareupdate_list.stderr",
			want: []macUpdate{
				{Label: "macOS Security Response 13.4.1 (c)-22F770820d", Title: "macOS Security Response 13.4.1 (c)",
					Version: "13.4.1 (c)", Recommended: true, Action: "restart"},
				{Label: "Safari16.5.2VenturaAuto-16.5.2", Title: "Safari", Version: "16.5.2", Recommended: true},
				{Label: "Command Line Tools for Xcode-14.3", Title: "Command Line Tools for Xcode", Version: "14.3", Recommended: true},
				{Label: "macOS Sonoma 14.0-23A344", Title: "macOS Sonoma 14.0", Version: "14.0", Recommended: true, Action: "restart"},
				{Label: "iCal-1.0.2", Title: "iCal", Version: "1.0.2"},
			},
			security:  []bool{true, false, false, false, false},
			wantSkips: 2, // the XType lines
		},
		{
			name:   "mojave's older format",
			stdout: "softwareupdate_mojave.stdout",
			want: []macUpdate{
				{Label: "Security Update 2021-005-10.14.6", Title: "Security Update 2021-005", Version: "10.14.6", Recommended: true, Action: "restart"},
				{Label: "Safari15.6.1MojaveAuto-15.6.1", Title: "Safari", Version: "15.6.1", Recommended: true},
				{Label: "BridgeOSUpdateCustomer", Title: "BridgeOSUpdateCustomer", Version: "10.14.6.1.1.1597238745", Recommended: true, Action: "shut down"},
				{Label: "iCal-1.0.2", Title: "iCal", Version: "1.0.2"},
			},
			security: []bool{true, false, false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr string
			if tt.stderr != "" {
				stderr = readDarwin(t, tt.stderr)
			}
			ups, skips, err := parseSoftwareUpdate(readDarwin(t, tt.stdout), stderr)
			t.Logf("%s", skips)
			if err != nil || ups == nil || !slices.Equal(ups, tt.want) || skips.n != tt.wantSkips {
				t.Fatalf("got %+v, %v, %d skips\nwant %+v, %d skips", ups, err, skips.n, tt.want, tt.wantSkips)
			}
			pending := macPending(ups)
			for i, p := range pending {
				if p.ID != ups[i].Label || p.Title != ups[i].Title || p.Version != ups[i].Version ||
					p.Source != "softwareupdate" || p.Security != tt.security[i] {
					t.Errorf("pending %+v from %+v", p, ups[i])
				}
			}
		})
	}
}

func TestParseSoftwareUpdateMalformed(t *testing.T) {
	banner := "Software Update Tool\n\nFinding available software\n"
	tests := []struct {
		name, stdout, stderr string
		want                 []macUpdate
		wantErr              string
	}{
		{name: "nothing at all", wantErr: "neither a list of updates nor"},
		{name: "banner only: not a silent zero", stderr: banner, wantErr: "neither a list"},
		{
			name:    "an error on stderr, exit 0",
			stderr:  banner + "Cannot connect to the Software Update server.\n",
			wantErr: `stderr: "Software Update Tool`,
		},
		{name: "garbage", stdout: "\x00\x01\x02\n<html>502 Bad Gateway</html>\n", wantErr: "neither a list"},
		{
			name:    "list announced, nothing readable",
			stdout:  "Software Update found the following new or updated software:\n# Label macOS\n\tsomething\n",
			wantErr: "announced updates but none could be read (2 skipped",
		},
		{
			name:   "label without details, CRLF",
			stdout: "Software Update found the following new or updated software:\r\n* Label: macOS Sonoma 14.7.4-23H420\r\n",
			want:   []macUpdate{{Label: "macOS Sonoma 14.7.4-23H420", Recommended: true}},
		},
		{
			name:   "a comma in a title, unknown fields, no trailing comma",
			stdout: "* Label: Pro Apps, Pro Video-2.0\n\tTitle: Pro Apps, Pro Video, Version: 2.0, Size: 1K, Recommended: NO, Deferred: NO\n",
			want:   []macUpdate{{Label: "Pro Apps, Pro Video-2.0", Title: "Pro Apps, Pro Video", Version: "2.0"}},
		},
		{
			name:   "details without a label skipped",
			stdout: "\tTitle: Orphan, Version: 1.0,\n* Label: Real-1.0\n\tTitle: Real, Version: 1.0,\n",
			want:   []macUpdate{{Label: "Real-1.0", Title: "Real", Version: "1.0", Recommended: true}},
		},
		{
			name:   "bad label skipped with its details",
			stdout: "* Label: \n\tTitle: Nothing, Version: 1,\n* Label: " + strings.Repeat("L", macFieldMax+1) + "\n* Label: ok\n",
			want:   []macUpdate{{Label: "ok", Recommended: true}},
		},
		{
			name:   "huge title dropped, entry kept",
			stdout: "* Label: big-1\n\tTitle: " + strings.Repeat("T", 100000) + ", Version: 1,\n",
			want:   []macUpdate{{Label: "big-1", Version: "1", Recommended: true}},
		},
		{
			name:   "older format with the heading on stderr",
			stdout: "   * Safari15.6.1MojaveAuto-15.6.1\n\tSafari (15.6.1), 97360K [recommended]\n",
			stderr: "Software Update Tool\n\nFinding available software\nSoftware Update found the following new or updated software:\n",
			want:   []macUpdate{{Label: "Safari15.6.1MojaveAuto-15.6.1", Title: "Safari", Version: "15.6.1", Recommended: true}},
		},
		{
			name:    "too many",
			stdout:  strings.Repeat("* Label: same-1\n\tTitle: Same, Version: 1,\n", macUpdatesMax+1),
			wantErr: fmt.Sprintf("more than %d updates listed", macUpdatesMax),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups, skips, err := parseSoftwareUpdate(tt.stdout, tt.stderr)
			t.Logf("%s", skips)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ups != nil {
					t.Fatalf("got %+v, %v; want error %q", ups, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(ups, tt.want) {
				t.Errorf("got  %+v, %v\nwant %+v", ups, err, tt.want)
			}
		})
	}
}

func TestMacSecurity(t *testing.T) {
	tests := []struct {
		u    macUpdate
		want bool
	}{
		{macUpdate{Label: "macOS Background Security Improvement 26.3.1 (a)-25D771280a"}, true},
		{macUpdate{Label: "x", Title: "macOS Security Response 13.4.1 (a)"}, true},
		{macUpdate{Label: "Security Update 2022-004-Catalina"}, true},
		{macUpdate{Label: "x", Version: "26.3.1 (b)"}, true},
		{macUpdate{Label: "macOS Sonoma 14.7.4-23H420", Title: "macOS Sonoma 14.7.4", Version: "14.7.4"}, false},
		{macUpdate{Label: "zoom-5.17.1 (28914)", Version: "5.17.1 (28914)"}, false},
		{macUpdate{Label: "x", Version: "1 (A)"}, false},
	}
	for _, tt := range tests {
		if got := macSecurity(tt.u); got != tt.want {
			t.Errorf("macSecurity(%+v) = %v", tt.u, got)
		}
	}
}

func TestCollectMacUpdates(t *testing.T) {
	banner := "printf 'Software Update Tool\\n\\nFinding available software\\n' >&2\n"
	tahoe, _, _ := parseSoftwareUpdate(readDarwin(t, "softwareupdate_tahoe.stdout"), "")
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    []wire.PendingUpdate // nil: unknown
		wantErr string
	}{
		{
			name:   "list, banner on stderr",
			script: catScript(t, "softwareupdate_tahoe.stdout", "softwareupdate_list.stderr"),
			want:   macPending(tahoe),
		},
		{
			name:   "none",
			script: catScript(t, "softwareupdate_none.stdout", "softwareupdate_none.stderr"),
			want:   []wire.PendingUpdate{},
		},
		{
			name:    "fails",
			script:  banner + "echo 'Error: no network' >&2; exit 1",
			wantErr: "pending updates: softwareupdate: exit status 1: Software Update Tool",
		},
		{name: "says nothing", script: banner, wantErr: "neither a list of updates"},
		{name: "hangs", script: banner + "exec sleep 30", timeout: 100 * time.Millisecond, wantErr: "pending updates: not done after 100ms"},
		{name: "floods", script: "yes '* Label: x'", wantErr: "larger than its bound"},
		{name: "missing", wantErr: "pending updates: softwareupdate: exec: \"softwareupdate\": executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scripts := map[string]string{"softwareupdate": tt.script}
			if tt.script == "" {
				scripts = nil
			}
			m := testMac(t, Config{AptTimeout: tt.timeout}, sonomaKernel, scripts)
			var s wire.Snapshot
			err := m.collectMacUpdates(context.Background(), &s)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if (s.PendingUpdates == nil) != (tt.want == nil) || !slices.Equal(s.PendingUpdates, tt.want) {
				t.Errorf("got %+v (nil %v), want %+v", s.PendingUpdates, s.PendingUpdates == nil, tt.want)
			}
		})
	}
}

// FuzzParseSoftwareUpdate checks that any output parses without panicking
// and that an accepted answer is bounded, labelled, and never the empty
// answer without "No new software available." in it.
func FuzzParseSoftwareUpdate(f *testing.F) {
	f.Add("* Label: a-1\n\tTitle: a, Version: 1, Size: 1K, Recommended: YES, Action: restart,\n", "")
	f.Add("Software Update found the following new or updated software:\n   * a\n\ta (1), 1K [recommended]\n", "")
	f.Add("", "No new software available.\n")
	f.Add("* Label: \n-\n- Label:x\n\tTitle: ,,: , Version: : \n", "Software Update Tool")
	f.Fuzz(func(t *testing.T, stdout, stderr string) {
		ups, _, err := parseSoftwareUpdate(stdout, stderr)
		if err != nil {
			return
		}
		if len(ups) == 0 && !strings.Contains(stdout+stderr, suNone) {
			t.Fatal("empty answer without the none message")
		}
		if len(ups) > macUpdatesMax {
			t.Fatalf("%d updates", len(ups))
		}
		for _, u := range ups {
			if u.Label == "" || len(u.Label) > macFieldMax || hasControl(u.Label+u.Title+u.Version) ||
				len(u.Title) > macFieldMax || len(u.Version) > macFieldMax {
				t.Fatalf("bad update %+v", u)
			}
		}
	})
}
