package service

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/windows/svc"

	"github.com/readymesh/readymesh/sessiond/sysevents"
)

// TestAnswer: the SCM's Shutdown and PreShutdown stop the agent with
// ErrShutdown and Stop with ErrStopRequested, only the first counting;
// power events reach a running sysevents watcher; the status the SCM
// sees accepts power events.
func TestAnswer(t *testing.T) {
	if svcStatus(Running).Accepts&svc.AcceptPowerEvent == 0 {
		t.Error("a running agent does not accept power events")
	}
	for _, tc := range []struct {
		cmds []svc.Cmd
		want error
	}{
		{[]svc.Cmd{svc.PreShutdown, svc.Stop}, ErrShutdown},
		{[]svc.Cmd{svc.Shutdown}, ErrShutdown},
		{[]svc.Cmd{svc.Stop, svc.Shutdown}, ErrStopRequested},
	} {
		reqs, status := make(chan svc.ChangeRequest), make(chan svc.Status, 1)
		stop, done := make(chan error, 1), make(chan struct{})
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			answer(reqs, status, stop, done)
		}()
		for _, c := range tc.cmds {
			reqs <- svc.ChangeRequest{Cmd: c}
		}
		if got := <-stop; got != tc.want {
			t.Errorf("%v: stop cause %v, want %v", tc.cmds, got, tc.want)
		}
		close(done)
		<-ended
	}

	w, err := sysevents.Start(context.Background(), sysevents.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reqs, status := make(chan svc.ChangeRequest), make(chan svc.Status, 1)
	stop, done := make(chan error, 1), make(chan struct{})
	go answer(reqs, status, stop, done)
	defer close(done)
	// The watcher may not listen yet: send the suspend until it is heard.
	for {
		reqs <- svc.ChangeRequest{Cmd: svc.PowerEvent, EventType: 0x4} // PBT_APMSUSPEND
		select {
		case e := <-w.Events():
			if e.Kind == sysevents.Metered {
				continue
			}
			if e.Kind != sysevents.Sleep {
				t.Fatalf("event %v after a suspend, want sleep", e.Kind)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
