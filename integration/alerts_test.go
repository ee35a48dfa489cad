package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestAlerts: an agent that stops (and says so: reason "stopped") opens a
// reachability alert after the stopped threshold and resolves it when it
// comes back; each change reaches a
// webhook on loopback, which fails its first delivery so the retry is
// exercised; meshctl alerts lists what is open.
func TestAlerts(t *testing.T) {
	needBinaries(t)
	var mu sync.Mutex
	var got []wire.AlertEvent
	posts := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		posts++
		if posts == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		var e wire.AlertEvent
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Errorf("webhook body %q: %v", raw, err)
		}
		got = append(got, e)
	}))
	defer hook.Close()
	base := testDir(t)
	b := startBrokerArgs(t, base, "alerts", 300*time.Millisecond,
		"--alert-every", "200ms", "--alert-offline", "1s", "--alert-offline-stopped", "1s", "--alert-webhook", hook.URL+"/hook")
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-01", "linux-ready.json")
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)
	if out := admin.ok("alerts"); !strings.Contains(out, "no open alerts") {
		t.Errorf("alerts while all is well: %q", out)
	}
	pc.stop()
	events := func() []wire.AlertEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]wire.AlertEvent(nil), got...)
	}
	poll(t, 20*time.Second, "an offline alert at the webhook", func() (bool, string) {
		es := events()
		return len(es) == 1 && es[0].Event == "opened" && es[0].Alert.Kind == wire.AlertOffline &&
			es[0].Alert.Cadence == wire.CadenceReachability && es[0].Alert.Machine == pc.full() &&
			strings.Contains(es[0].Alert.Detail, "stopped"), fmt.Sprintf("%+v", es)
	})
	var open []wire.Alert
	json.Unmarshal([]byte(admin.ok("alerts", "--json")), &open)
	if len(open) != 1 || open[0].Kind != wire.AlertOffline {
		t.Errorf("meshctl alerts: %+v", open)
	}
	pc.start()
	poll(t, 20*time.Second, "the alert resolved at the webhook", func() (bool, string) {
		es := events()
		return len(es) == 2 && es[1].Event == "resolved" && es[1].Alert.Resolved != nil, fmt.Sprintf("%+v", es)
	})
	mu.Lock()
	if posts < 3 {
		t.Errorf("%d posts for 2 changes, want a retry after the first failure", posts)
	}
	mu.Unlock()
	if out := admin.ok("alerts"); !strings.Contains(out, "no open alerts") {
		t.Errorf("alerts after recovery: %q", out)
	}
}
