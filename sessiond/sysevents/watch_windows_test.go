package sysevents

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
	"unsafe"
)

// TestPowerEvents: the service's power events reach a running watcher:
// a suspend is a Sleep that holds nothing, the two events of one resume
// are one Resume, and other power events are nothing.
func TestPowerEvents(t *testing.T) {
	log, l := newLogs(t)
	w, err := Start(context.Background(), Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Wait until the watcher listens: the cost watch is set up first and
	// either reads a cost or warns.
	deadline := time.Now().Add(wait)
	for {
		if _, ok := powerHooks.Load(w); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never listened for power events")
		}
		time.Sleep(5 * time.Millisecond)
	}
	PowerEvent(0xA) // PBT_APMPOWERSTATUSCHANGE: nothing
	PowerEvent(pbtSuspend)
	PowerEvent(pbtResumeAutomatic)
	PowerEvent(pbtResumeSuspend)
	PowerEvent(pbtSuspend)
	var got []Kind
	for len(got) < 3 {
		select {
		case e := <-w.Events():
			if e.Kind == Metered {
				continue // the machine's own connection, if Windows reports one
			}
			if e.hold != nil {
				t.Errorf("%v holds a delay on Windows", e.Kind)
			}
			e.Release()
			got = append(got, e.Kind)
		case <-time.After(wait):
			t.Fatalf("events %v, then nothing", got)
		}
	}
	if want := []Kind{Sleep, Resume, Sleep}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("events %v, want %v", got, want)
	}
	t.Logf("metered: %v; cost warnings: %d", w.Metered(), l.count(slog.LevelWarn, "metered"))
}

// TestHintLayout: the hint has NL_NETWORK_CONNECTIVITY_HINT's size, and
// costs map as documented.
func TestHintLayout(t *testing.T) {
	if n := unsafe.Sizeof(connectivityHint{}); n != 12 {
		t.Errorf("connectivityHint is %d bytes, want 12", n)
	}
	for _, tc := range []struct {
		h    connectivityHint
		want bool
	}{
		{connectivityHint{Cost: costUnknown}, false},
		{connectivityHint{Cost: costUnrestricted}, false},
		{connectivityHint{Cost: costFixed}, true},
		{connectivityHint{Cost: costVariable}, true},
	} {
		if got, _ := hintMetered(tc.h); got != tc.want {
			t.Errorf("cost %d: metered %v, want %v", tc.h.Cost, got, tc.want)
		}
	}
}

// TestReadHint: GetNetworkConnectivityHint answers where it exists; its
// absence (Wine) is ErrUnsupported, which the watcher logs.
func TestReadHint(t *testing.T) {
	h, err := readHint()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("this Windows has no connectivity hint (as Wine 8): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hint %+v", h)
}
