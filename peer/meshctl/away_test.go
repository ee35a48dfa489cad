package meshctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// awayNow is the tests' clock: 18:30 UTC, and the words are in now's zone.
var awayNow = time.Date(2026, 12, 6, 18, 30, 0, 0, time.UTC)

func before(d time.Duration) *time.Time { t := awayNow.Add(-d); return &t }

func TestReachColumn(t *testing.T) {
	tests := []struct {
		r    wire.Reachability
		want string
	}{
		{wire.Reachability{Online: true, Transport: "quic"}, "● online"},
		{wire.Reachability{Online: true, Transport: "tcp", UDPBlockedSince: before(2*time.Hour + 5*time.Minute)}, "● online (UDP blocked 2h)"},
		{wire.Reachability{LastSeen: before(5 * time.Minute)}, "○ offline, seen 5m ago"},
		{wire.Reachability{}, "○ offline (never seen)"},
		{wire.Reachability{OfflineReason: wire.AwayAsleep, OfflineSince: before(2*time.Hour + 10*time.Minute), LastSeen: before(3 * time.Hour)}, "○ asleep 2h"},
		{wire.Reachability{OfflineReason: wire.AwayLost, OfflineSince: before(3*24*time.Hour + time.Hour)}, "○ lost 3d"},
		{wire.Reachability{OfflineReason: wire.AwayLost, LastSeen: before(40 * time.Second)}, "○ lost 40s"},
		{wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: before(5 * time.Hour), ExpectedBack: before(-90 * time.Minute)}, "○ quiet 5h (back ~20:00)"},
		{wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: before(7 * time.Hour), ExpectedBack: before(time.Hour)}, "○ quiet 7h (due 17:30)"},
		{wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: before(25 * time.Hour)}, "○ shutdown 25h"},
		{wire.Reachability{OfflineReason: wire.AwayStopped, OfflineSince: before(12 * time.Minute)}, "○ stopped 12m"},
		{wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: before(time.Hour), ExpectedBack: before(-30 * time.Hour)}, "○ shutdown 1h (back ~Dec 8 00:30)"},
	}
	for _, tt := range tests {
		if got := reach(tt.r, awayNow); got != tt.want {
			t.Errorf("reach(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// TestExplainReasons checks the client-facing sentence for each reason.
func TestExplainReasons(t *testing.T) {
	tests := []struct {
		name string
		card wire.Card
		want []string
		not  []string
	}{
		{name: "asleep, lid", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayAsleep,
			OfflineSince: before(28 * time.Minute), Detail: "lid closed"}},
			want: []string{"No: your laptop went to sleep at 18:02 (lid closed); we can connect when it wakes.", "meshctl wait --online"}},
		{name: "asleep", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayAsleep, OfflineSince: before(26 * time.Hour)}},
			want: []string{"No: the machine went to sleep at Dec 5 16:30; we can connect when it wakes."}},
		{name: "shutting down", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayShutdown,
			OfflineSince: before(30 * time.Second), Detail: "reboot", ExpectedBack: before(-5 * time.Minute)}},
			want: []string{"No: the machine is shutting down (reboot); we can connect once it starts again. It is expected back at about 18:35."}},
		{name: "shut down", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: before(3 * time.Hour)}},
			want: []string{"No: the machine was shut down at 15:30; we can connect once it starts again."}, not: []string{"expected back"}},
		{name: "stopped", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayStopped, OfflineSince: before(time.Hour), Detail: "service stop"}},
			want: []string{"No: the agent was stopped at 17:30 (service stop); we can connect once it is started again."}},
		{name: "quiet", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: before(time.Hour),
			ExpectedBack: before(-4 * time.Hour)}},
			want: []string{"No: the machine is on a metered connection and stays quiet to save data; it checks in next at about 22:30."}},
		{name: "quiet, overdue", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: before(8 * time.Hour),
			ExpectedBack: before(2 * time.Hour)}},
			want: []string{"its next check-in was due at 16:30 and has not come."}},
		{name: "lost", card: wire.Card{Reachability: wire.Reachability{OfflineReason: wire.AwayLost, OfflineSince: before(10 * time.Minute), Detail: "heartbeats missed"}},
			want: []string{"No: we lost contact at 18:20 without notice (heartbeats missed); the network or power may be down."}},
		{name: "no reason (older broker)", card: wire.Card{Reachability: wire.Reachability{LastSeen: before(5 * time.Minute)}},
			want: []string{"No: it was last seen 5m ago."}},
		{name: "online, UDP blocked, resumed", card: wire.Card{Reachability: wire.Reachability{Online: true, Broker: "b1", Transport: "tcp",
			Since: before(30 * time.Minute), UDPBlockedSince: before(3 * time.Hour),
			Returned: &wire.Returned{What: wire.ReturnedResumed, At: *before(31 * time.Minute)}}},
			want: []string{"Yes: its agent is connected to broker b1 over tcp since 18:00.", "When it came back it said: resumed from sleep at 17:59.",
				"Its network has blocked UDP since 15:30, so sessions will go through the broker's relay."}},
		{name: "unclean end, recent", card: wire.Card{
			Readiness: wire.Readiness{LastUncleanEnd: &wire.RunEnd{At: *before(2 * time.Hour), Detail: "exit status 2"}},
			Reachability: wire.Reachability{Online: true, Broker: "b1", Transport: "quic",
				Returned: &wire.Returned{What: wire.ReturnedUnclean, At: *before(2 * time.Hour), Detail: "exit status 2"}}},
			want: []string{"The agent's previous run ended uncleanly at 16:30 (exit status 2)"},
			not:  []string{"When it came back", "blocks UDP"}},
		{name: "unclean end, old", card: wire.Card{
			Readiness:    wire.Readiness{LastUncleanEnd: &wire.RunEnd{At: *before(3 * 24 * time.Hour)}},
			Reachability: wire.Reachability{Online: true, Broker: "b1", Transport: "quic"}},
			not: []string{"uncleanly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.card.Client, tt.card.Name = "acme", "pc"
			var out bytes.Buffer
			writeExplanation(&out, &tt.card, awayNow)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("says %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestShowAway checks `show`'s reachability part for a machine away and
// one back.
func TestShowAway(t *testing.T) {
	c := wire.Card{Client: "acme", Name: "pc", Reachability: wire.Reachability{OfflineReason: wire.AwayQuiet,
		OfflineSince: before(5 * time.Hour), Detail: "metered connection (wlan0)", ExpectedBack: before(-time.Hour)},
		Readiness: wire.Readiness{LastUncleanEnd: &wire.RunEnd{At: *before(48 * time.Hour), Detail: "panic: nil map"}},
		History:   []wire.HistoryItem{{Seq: 4, Reason: wire.ReasonUnclean, Detail: "panic: nil map"}}}
	var out bytes.Buffer
	printCard(&out, &c, awayNow)
	for _, w := range []string{"REACHABILITY  ○ quiet 5h (back ~19:30)", "away since     13:30 (5h00m ago)",
		"detail         metered connection (wlan0)", "expected back  about 19:30",
		"unclean end    Dec 4 18:30 (panic: nil map)", "unclean-end agent , 0 pending (panic: nil map)"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("show lacks %q:\n%s", w, out.String())
		}
	}
	c.Reachability = wire.Reachability{Online: true, Broker: "b1", Transport: "websocket", Since: before(time.Minute),
		UDPBlockedSince: before(time.Hour), Returned: &wire.Returned{What: wire.ReturnedBooted, At: *before(2 * time.Minute)}}
	out.Reset()
	printCard(&out, &c, awayNow)
	for _, w := range []string{"● online (UDP blocked 1h)", "UDP blocked    since 17:30", "returned       booted at 18:28"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("show lacks %q:\n%s", w, out.String())
		}
	}
}
