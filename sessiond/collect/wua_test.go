package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The WUA search results in testdata/windows are what Windows PowerShell
// 5.1 prints for this one-liner, run as an administrator (the agent's
// search, with the fields the collector reads):
//
//	$r = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher().Search('IsInstalled=0 and IsHidden=0'); ConvertTo-Json -Depth 4 -InputObject @($r.Updates | ForEach-Object { [ordered]@{ Title = $_.Title; UpdateID = $_.Identity.UpdateID; KBArticleIDs = @($_.KBArticleIDs); MsrcSeverity = $_.MsrcSeverity; Categories = @($_.Categories | ForEach-Object { [ordered]@{ Name = $_.Name; CategoryID = $_.CategoryID; Type = $_.Type } }) } }) | Set-Content -Encoding UTF8 wua.json
//
// (UTF-8 with a byte order mark, CRLF, PowerShell 5.1's indentation.)
// Like the registry exports they are reconstructions in that format, of a
// Windows 10 22H2 machine missing January 2024's updates and of a Windows
// 11 machine with none missing, written without a Windows machine at hand.

// loadWUA decodes a captured search result.
func loadWUA(t *testing.T, name string) []wuaUpdate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", name))
	if err != nil {
		t.Fatal(err)
	}
	ups, err := decodeWUAJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ups
}

func decodeWUAJSON(b []byte) ([]wuaUpdate, error) {
	var ups []wuaUpdate
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ups); err != nil {
		return nil, err
	}
	return ups, nil
}

func TestPendingFromWUACapture(t *testing.T) {
	got, total := pendingFromWUA(loadWUA(t, "wua-win10-22h2.json"))
	want := []wire.PendingUpdate{
		{ID: "KB5034122", Severity: "Critical", Security: true,
			Title: "2024-01 Cumulative Update for Windows 10 Version 22H2 for x64-based Systems (KB5034122)"},
		{ID: "KB5034441", Severity: "Important", Security: true,
			Title: "2024-01 Security Update for Windows 10 Version 22H2 for x64-based Systems (KB5034441)"},
		{ID: "KB5034275", Severity: "Important", Security: true,
			Title: "2024-01 Cumulative Update for .NET Framework 3.5, 4.8 and 4.8.1 for Windows 10 Version 22H2 for x64 (KB5034275)"},
		{ID: "KB2267602",
			Title: "Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 (Version 1.403.3283.0) - Current Channel (Broad)"},
		{ID: "KB890830", Title: "Windows Malicious Software Removal Tool x64 - v5.120 (KB890830)"},
		{ID: "KB4023057", Title: "2024-01 Update for Windows 10 Version 22H2 for x64-based Systems (KB4023057)"},
		// A driver has no KB article: its UpdateID names it.
		{ID: "6b2b5f3e-4f59-4a0e-9d6c-1c0e7a2f8b31", Title: "Intel Corporation - Display - 31.0.101.4502"},
	}
	for i := range want {
		want[i].Source = "windows-update"
	}
	if !slices.Equal(got, want) || total != len(want) {
		t.Errorf("got (total %d)\n%s\nwant\n%s", total, listUpdates(got), listUpdates(want))
	}

	none, total := pendingFromWUA(loadWUA(t, "wua-win11-23h2-none.json"))
	if none == nil || len(none) != 0 || total != 0 {
		t.Errorf("fully patched machine: %v (total %d), want an empty list", none, total)
	}
}

func listUpdates(us []wire.PendingUpdate) string {
	var b strings.Builder
	for _, u := range us {
		fmt.Fprintf(&b, "\t%+v\n", u)
	}
	return b.String()
}

func TestPendingFromWUARules(t *testing.T) {
	sec := wuaCategory{Name: "Sicherheitsupdates", CategoryID: "{0FA1201D-4330-4FA8-8AE9-B877473B6441}"}
	got, total := pendingFromWUA([]wuaUpdate{
		{Title: "localised security", KBArticleIDs: []string{"5000001"}, Categories: []wuaCategory{sec}},
		{Title: "by name", KBArticleIDs: []string{"5000002"}, Categories: []wuaCategory{{Name: "Security Updates"}}},
		{Title: "rated only", KBArticleIDs: []string{"KB5000003"}, MsrcSeverity: "moderate"},
		{Title: "critical updates are not security", KBArticleIDs: []string{"5000004"},
			Categories: []wuaCategory{{Name: "Critical Updates", CategoryID: "e6cf1350-c01b-414d-a61f-263d14d133b4"}}},
		{Title: "no id at all"},
		{Title: "garbage KBs", KBArticleIDs: []string{"", "KB", "12ab", "55555555555555"}, UpdateID: " 0d7a3c1e-aaaa-bbbb-cccc-000000000001 "},
		{Title: "second KB", KBArticleIDs: []string{"n/a", "5000006"}},
		{Title: "", KBArticleIDs: []string{"5000003"}, MsrcSeverity: "Critical"}, // same KB: merged
		{Title: "kb5000006 again", KBArticleIDs: []string{"kb5000006"}, MsrcSeverity: "Severe\x00ly\nbad"},
		{Title: "\x1b]0;title\x07" + strings.Repeat("t", 10_000), KBArticleIDs: []string{"5000007"}},
	})
	want := []wire.PendingUpdate{
		{ID: "KB5000001", Title: "localised security", Security: true},
		{ID: "KB5000002", Title: "by name", Security: true},
		{ID: "KB5000003", Title: "rated only", Security: true, Severity: "Critical"},
		{ID: "KB5000004", Title: "critical updates are not security"},
		{ID: "0d7a3c1e-aaaa-bbbb-cccc-000000000001", Title: "garbage KBs"},
		{ID: "KB5000006", Title: "second KB", Security: true, Severity: "Severelybad"},
		{ID: "KB5000007", Title: cleanText("]0;title"+strings.Repeat("t", 10_000), maxUpdateTitle)},
	}
	for i := range want {
		want[i].Source = "windows-update"
	}
	if !slices.Equal(got, want) || total != len(want) {
		t.Errorf("got (total %d)\n%s\nwant\n%s", total, listUpdates(got), listUpdates(want))
	}
}

func TestPendingFromWUAMalformedCapture(t *testing.T) {
	for name, body := range map[string]string{
		"truncated":     `[{"Title": "x", "KBArticleIDs": ["1"`,
		"not an array":  `{"Title": "x"}`,
		"wrong type":    `[{"Title": "x", "KBArticleIDs": "5034441"}]`,
		"unknown field": `[{"Title": "x", "IsDownloaded": true}]`,
	} {
		if _, err := decodeWUAJSON([]byte(body)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestPendingFromWUAHuge(t *testing.T) {
	ups := make([]wuaUpdate, 100_000)
	for i := range ups {
		ups[i] = wuaUpdate{Title: strings.Repeat("<", 300), KBArticleIDs: []string{fmt.Sprint(1_000_000 + i)}, MsrcSeverity: "Low"}
	}
	got, total := pendingFromWUA(ups)
	if total != len(ups) || len(got) == 0 || len(got) > maxWUAUpdates {
		t.Fatalf("%d of %d kept", len(got), total)
	}
	if got[0].ID != "KB1000000" || got[len(got)-1].ID != fmt.Sprintf("KB%d", 1_000_000+len(got)-1) {
		t.Errorf("kept %s … %s, want the first ones in search order", got[0].ID, got[len(got)-1].ID)
	}
	assertFitsSnapshot(t, &wire.Snapshot{Hostname: "h", OS: wire.OS{Family: "windows"}, AgentVersion: "v",
		PendingUpdates: got}, maxUpdatesJSON)

	few := make([]wuaUpdate, maxWUAUpdates+500)
	for i := range few {
		few[i] = wuaUpdate{KBArticleIDs: []string{fmt.Sprint(i + 1)}}
	}
	if got, total := pendingFromWUA(few); len(got) != maxWUAUpdates || total != len(few) {
		t.Errorf("short updates: %d of %d kept, want %d", len(got), total, maxWUAUpdates)
	}
}

// fakeSearcher answers searches with fixed updates, after release is
// closed if it is not nil.
type fakeSearcher struct {
	release chan struct{}
	ups     []wuaUpdate
	err     error
	delay   time.Duration

	mu       sync.Mutex
	calls    int
	criteria []string
}

func (f *fakeSearcher) Search(criteria string) ([]wuaUpdate, error) {
	f.mu.Lock()
	f.calls++
	f.criteria = append(f.criteria, criteria)
	f.mu.Unlock()
	if f.release != nil {
		<-f.release
	}
	time.Sleep(f.delay)
	return f.ups, f.err
}

func (f *fakeSearcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var oneKB = []wuaUpdate{{Title: "t", KBArticleIDs: []string{"5034441"}, MsrcSeverity: "Important"}}

func TestWUACollectorAnswers(t *testing.T) {
	f := &fakeSearcher{ups: oneKB}
	w := newWUACollector(f)
	var s wire.Snapshot
	if err := w.collect(context.Background(), time.Minute, testLogger(t), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.PendingUpdates) != 1 || s.PendingUpdates[0].ID != "KB5034441" || !slices.Equal(f.criteria, []string{wuaCriteria}) {
		t.Errorf("pending %+v after searching %q", s.PendingUpdates, f.criteria)
	}

	var none wire.Snapshot
	if err := newWUACollector(&fakeSearcher{}).collect(context.Background(), time.Minute, testLogger(t), &none); err != nil ||
		none.PendingUpdates == nil || len(none.PendingUpdates) != 0 {
		t.Errorf("nothing pending: %v, %v; want an empty list", none.PendingUpdates, err)
	}
}

func TestWUACollectorSearchFails(t *testing.T) {
	w := newWUACollector(&fakeSearcher{err: fmt.Errorf("create Microsoft.Update.Session: Invalid class string")})
	var s wire.Snapshot
	err := w.collect(context.Background(), time.Minute, testLogger(t), &s)
	if err == nil || !strings.Contains(err.Error(), "Windows Update Agent: create Microsoft.Update.Session") {
		t.Errorf("error %v", err)
	}
	if s.PendingUpdates != nil {
		t.Errorf("pending updates %v after a failed search, want nil (unknown)", s.PendingUpdates)
	}
}

type panicSearcher struct{}

func (panicSearcher) Search(string) ([]wuaUpdate, error) { panic("COM went away") }

func TestWUACollectorSearchPanics(t *testing.T) {
	var s wire.Snapshot
	err := newWUACollector(panicSearcher{}).collect(context.Background(), time.Minute, testLogger(t), &s)
	if err == nil || !strings.Contains(err.Error(), "search panicked: COM went away") || s.PendingUpdates != nil {
		t.Errorf("%v, %v", err, s.PendingUpdates)
	}
}

func TestWUACollectorTruncates(t *testing.T) {
	ups := make([]wuaUpdate, maxWUAUpdates+1)
	for i := range ups {
		ups[i] = wuaUpdate{KBArticleIDs: []string{fmt.Sprint(i + 1)}}
	}
	var s wire.Snapshot
	err := newWUACollector(&fakeSearcher{ups: ups}).collect(context.Background(), time.Minute, testLogger(t), &s)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d updates pending, reporting the first %d", maxWUAUpdates+1, maxWUAUpdates)) {
		t.Errorf("error %v", err)
	}
	if len(s.PendingUpdates) != maxWUAUpdates {
		t.Errorf("%d pending updates kept", len(s.PendingUpdates))
	}
}

// TestWUACollectorTimeout follows a search that outlasts its bound: the
// collection reports the timeout, the next one refuses to start a second
// search, and once the first ends its result is what the next collection
// reports, without searching again.
func TestWUACollectorTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSearcher{release: make(chan struct{}), ups: oneKB}
		w := newWUACollector(f)
		log := testLogger(t)
		ctx := context.Background()

		start := time.Now()
		var s1 wire.Snapshot
		err := w.collect(ctx, time.Minute, log, &s1)
		if err == nil || !strings.Contains(err.Error(), "not done after 1m0s") || !strings.Contains(err.Error(), "cannot be cancelled") {
			t.Fatalf("first collection: %v", err)
		}
		if time.Since(start) != time.Minute || s1.PendingUpdates != nil {
			t.Errorf("gave up after %v with %v", time.Since(start), s1.PendingUpdates)
		}

		time.Sleep(5 * time.Minute)
		var s2 wire.Snapshot
		err = w.collect(ctx, time.Minute, log, &s2)
		if err == nil || !strings.Contains(err.Error(), "started 6m0s ago is still running") || s2.PendingUpdates != nil {
			t.Fatalf("second collection: %v, %v", err, s2.PendingUpdates)
		}
		if f.count() != 1 {
			t.Fatalf("%d searches started while one was running", f.count())
		}

		close(f.release)
		synctest.Wait() // the search's goroutine ends
		var s3 wire.Snapshot
		if err := w.collect(ctx, time.Minute, log, &s3); err != nil || len(s3.PendingUpdates) != 1 {
			t.Fatalf("third collection: %v, %v; want the late result", err, s3.PendingUpdates)
		}
		if f.count() != 1 {
			t.Errorf("the late result was not used: %d searches", f.count())
		}

		var s4 wire.Snapshot
		if err := w.collect(ctx, time.Minute, log, &s4); err != nil || len(s4.PendingUpdates) != 1 || f.count() != 2 {
			t.Errorf("fourth collection: %v, %v after %d searches; want a new search", err, s4.PendingUpdates, f.count())
		}
	})
}

func TestWUACollectorCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSearcher{release: make(chan struct{})}
		w := newWUACollector(f)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var s wire.Snapshot
		err := w.collect(ctx, time.Hour, testLogger(t), &s)
		if err == nil || !strings.Contains(err.Error(), "abandoned: context deadline exceeded") || s.PendingUpdates != nil {
			t.Errorf("collection: %v, %v", err, s.PendingUpdates)
		}
		close(f.release)
		synctest.Wait()
	})
}

// TestWUACollectorResultAtTheBound ends the search at the very instant
// its caller gives up. Whichever wins, the result is not lost: it is
// either reported now or by the next collection, without a new search.
func TestWUACollectorResultAtTheBound(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeSearcher{ups: oneKB, delay: time.Minute}
			w := newWUACollector(f)
			var s wire.Snapshot
			if err := w.collect(context.Background(), time.Minute, testLogger(t), &s); err == nil {
				if len(s.PendingUpdates) != 1 {
					t.Fatalf("answered with %v", s.PendingUpdates)
				}
				return
			}
			synctest.Wait()
			var next wire.Snapshot
			if err := w.collect(context.Background(), time.Minute, testLogger(t), &next); err != nil ||
				len(next.PendingUpdates) != 1 || f.count() != 1 {
				t.Fatalf("next collection: %v, %v after %d searches", err, next.PendingUpdates, f.count())
			}
		})
	}
}
