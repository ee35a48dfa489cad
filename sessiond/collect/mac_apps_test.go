package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseApplications(t *testing.T) {
	apps, skips, err := parseApplications([]byte(readDarwin(t, "system_profiler_apps.json")))
	if err != nil || skips.n != 0 {
		t.Fatalf("err %v, %s", err, skips)
	}
	// Sorted by name then version, byte order; Python Launcher installed
	// twice at one version is one package, Chrome at two versions two.
	want := []wire.Package{
		{Name: "Automator", Version: "2.10"},
		{Name: "Google Chrome", Version: "101.0.4951.54"},
		{Name: "Google Chrome", Version: "120.0.6099.216"},
		{Name: "Keynote", Version: "13.2"},
		{Name: "Microsoft Teams classic", Version: "1.6.00.35961"},
		{Name: "Python Launcher", Version: "3.12.0"},
		{Name: "Safari", Version: "17.2.1"},
		{Name: "Uninstall AnyConnect"},
		{Name: "Xcode", Version: "15.1"},
		{Name: "zoom.us", Version: "5.17.1 (28914)"},
	}
	if !slices.Equal(apps, want) {
		t.Errorf("got  %+v\nwant %+v", apps, want)
	}
}

func TestParseApplicationsMalformed(t *testing.T) {
	long := strings.Repeat("n", macFieldMax+1)
	tests := []struct {
		name      string
		doc       string
		want      []wire.Package
		wantSkips int
		wantErr   string
	}{
		{name: "empty", doc: "", wantErr: "output ends early"},
		{name: "not json", doc: "system_profiler: SPApplicationsDataType: error -1", wantErr: "invalid character"},
		{name: "array at top", doc: `[{"_name": "Safari"}]`, wantErr: "found [ where { was expected"},
		{name: "other data type", doc: `{"SPSoftwareDataType": [{"_name": "os"}]}`, wantErr: "no SPApplicationsDataType list"},
		{name: "list is an object", doc: `{"SPApplicationsDataType": {"_name": "Safari"}}`, wantErr: "found { where [ was expected"},
		{name: "cut inside an entry", doc: `{"SPApplicationsDataType": [{"_name": "Safari", "vers`, wantErr: "entry 0: unexpected EOF"},
		{name: "cut after an entry", doc: `{"SPApplicationsDataType": [{"_name": "Safari"}`, wantErr: "list not closed: output ends early"},
		{name: "empty list", doc: `{"SPApplicationsDataType": []}`, want: []wire.Package{}},
		{
			name: "other keys first",
			doc:  `{"_timeStamp": "x", "other": {"a": [1, {"b": null}]}, "SPApplicationsDataType": [{"_name": "Safari", "version": "17.2.1"}]}`,
			want: []wire.Package{{Name: "Safari", Version: "17.2.1"}},
		},
		{
			name: "bad entries skipped with a reason",
			doc: `{"SPApplicationsDataType": [1, "Safari", null, [], {"_name": 5}, {"_name": "A", "version": 2},
				{"_name": ""}, {"_name": "   "}, {"version": "1.0"}, {"_name": "` + long + `"}, {"_name": "B", "version": "` + long + `"},
				{"_name": "bell\u0007"}, {"_name": " Kept ", "version": " 1.0 ", "path": "/Applications/Kept.app", "extra": {"x": [1]}}]}`,
			want:      []wire.Package{{Name: "Kept", Version: "1.0"}},
			wantSkips: 12,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, skips, err := parseApplications([]byte(tt.doc))
			t.Logf("%s", skips)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || apps != nil {
					t.Fatalf("got %+v, %v; want error %q", apps, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(apps, tt.want) || skips.n != tt.wantSkips {
				t.Errorf("got %+v, %v, %d skips; want %+v, %d skips", apps, err, skips.n, tt.want, tt.wantSkips)
			}
		})
	}
}

func TestMacSkipsKeepsFewReasons(t *testing.T) {
	var s macSkips
	for i := range 100 {
		s.add("entry %d", i)
	}
	if s.n != 100 || len(s.reasons) != macSkipsKept || !strings.HasSuffix(s.String(), "; 92 more") {
		t.Errorf("%d, %q", s.n, s.String())
	}
}

// appsDoc returns a system_profiler document listing n applications.
func appsDoc(n int) string {
	var b strings.Builder
	b.WriteString(`{"SPApplicationsDataType" : [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"_name" : "App %05d", "path" : "/Applications/App %05d.app", "version" : "1.%d"}`, i, i, i)
	}
	b.WriteString("]}")
	return b.String()
}

func TestParseApplicationsBounds(t *testing.T) {
	apps, _, err := parseApplications([]byte(appsDoc(macAppsMax + 5)))
	if !errors.Is(err, errMacAppsCut) || len(apps) != macAppsMax {
		t.Errorf("%d apps, %v", len(apps), err)
	}
	apps, _, err = parseApplications([]byte(appsDoc(macAppsMax)))
	if err != nil || len(apps) != macAppsMax {
		t.Errorf("at the bound: %d apps, %v", len(apps), err)
	}
	huge := make([]byte, macProfilerMax+1)
	if apps, _, err := parseApplications(huge); err == nil || apps != nil {
		t.Errorf("huge input: %d apps, %v", len(apps), err)
	}
}

func TestCollectMacApps(t *testing.T) {
	many := filepath.Join(testdir.New(t), "many.json")
	if err := os.WriteFile(many, []byte(appsDoc(macAppsMax+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	sample, _, _ := parseApplications([]byte(readDarwin(t, "system_profiler_apps.json")))
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    int // packages kept
		wantErr string
	}{
		{name: "sample", script: catScript(t, "system_profiler_apps.json", ""), want: len(sample)},
		{
			name: "noise on stderr",
			script: "echo '2024-01-10 09:12:44.101 system_profiler[812:10233] SPApplicationsReporter: timed out' >&2\n" +
				catScript(t, "system_profiler_apps.json", ""),
			want: len(sample),
		},
		{name: "fails", script: "echo 'system_profiler: data type not found' >&2; exit 1", wantErr: "exit status 1: system_profiler: data type not found"},
		{name: "not json", script: "echo 'SPApplicationsDataType: error'", wantErr: "packages: system_profiler: invalid character"},
		// 50 MB: refused once the bound is passed; the writer is stopped
		// by its closed pipe instead of being read to the end.
		{name: "50 MB", script: "head -c 52428800 /dev/zero", wantErr: "larger than its bound"},
		{name: "hangs", script: "exec sleep 30", timeout: 100 * time.Millisecond, wantErr: "packages: not done after 100ms"},
		{name: "too many", script: "cat '" + many + "'", want: macAppsMax, wantErr: "list cut"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMac(t, Config{AptTimeout: tt.timeout}, sonomaKernel, map[string]string{"system_profiler": tt.script})
			var s wire.Snapshot
			start := time.Now()
			err := m.collectMacApps(context.Background(), &s)
			t.Logf("took %v: %v", time.Since(start), err)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if len(s.Packages) != tt.want || (tt.want == 0 && s.Packages != nil) {
				t.Errorf("%d packages (nil %v), want %d", len(s.Packages), s.Packages == nil, tt.want)
			}
		})
	}
}

// FuzzParseApplications checks that any document parses without panicking
// into a sorted list of distinct, named, bounded packages.
func FuzzParseApplications(f *testing.F) {
	f.Add(`{"SPApplicationsDataType" : [{"_name" : "Safari", "version" : "17.2.1"}, {"_name" : "A"}]}`)
	f.Add(`{"SPApplicationsDataType" : [1, null, {"_name": 5}]}`)
	f.Add(`{"x": [], "SPApplicationsDataType" : [`)
	f.Fuzz(func(t *testing.T, doc string) {
		apps, _, err := parseApplications([]byte(doc))
		if err != nil && !errors.Is(err, errMacAppsCut) && apps != nil {
			t.Fatalf("error %v with %d apps", err, len(apps))
		}
		for i, a := range apps {
			if a.Name == "" || len(a.Name) > macFieldMax || len(a.Version) > macFieldMax || hasControl(a.Name+a.Version) {
				t.Fatalf("bad package %+v", a)
			}
			if i > 0 && (apps[i-1].Name > a.Name || apps[i-1] == a) {
				t.Fatalf("not sorted and distinct: %+v, %+v", apps[i-1], a)
			}
		}
	})
}

// TestParseApplicationsJSONBudget: names full of characters JSON writes
// as six bytes cannot push the list past the packages' budget.
func TestParseApplicationsJSONBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"SPApplicationsDataType":[`)
	for i := range 1500 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"_name":"app-%05d-%s","version":"1.0"}`, i, strings.Repeat("<", 200))
	}
	b.WriteString("]}")
	apps, _, err := parseApplications([]byte(b.String()))
	if !errors.Is(err, errMacAppsBudget) {
		t.Fatalf("err = %v, want the budget's", err)
	}
	size := 0
	for _, p := range apps {
		size += jsonLen(p)
	}
	if size > maxPackagesJSON || len(apps) == 0 {
		t.Fatalf("%d applications in %d bytes of JSON, budget %d", len(apps), size, maxPackagesJSON)
	}
}
