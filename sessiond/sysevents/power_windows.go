package sysevents

import (
	"sync"
)

// Power broadcast event types a service receives with
// SERVICE_CONTROL_POWEREVENT (winuser.h's PBT_ values).
const (
	pbtSuspend         = 0x4  // PBT_APMSUSPEND: the system is suspending
	pbtResumeSuspend   = 0x7  // PBT_APMRESUMESUSPEND: resumed, and a user is there
	pbtResumeAutomatic = 0x12 // PBT_APMRESUMEAUTOMATIC: resumed, sent on every resume
)

// powerKind is the Kind of a power event; zero for those the watcher
// ignores (battery, power-setting changes).
func powerKind(eventType uint32) Kind {
	switch eventType {
	case pbtSuspend:
		return Sleep
	case pbtResumeSuspend, pbtResumeAutomatic:
		return Resume
	}
	return 0
}

// PowerEvent hands the watchers a power event the Service Control
// Manager sent the service (svc.PowerEvent's EventType). Windows tells
// services of sleep only through their control handler, which package
// service owns, so service calls this for every power event it accepts.
// It never blocks: a watcher whose queue is full misses the event.
//
// It cannot hold the suspend: x/sys/windows/svc's control handler
// returns to the SCM as soon as its dispatcher takes the request, before
// the service sees it, and Windows has offered services no way to delay
// a suspend since Vista (it allows about two seconds for PBT_APMSUSPEND
// and then suspends regardless). So a Sleep here holds nothing, and its
// Release does nothing: the agent's leaving notice races the suspend.
func PowerEvent(eventType uint32) {
	k := powerKind(eventType)
	if k == 0 {
		return
	}
	powerHooks.Range(func(_, v any) bool {
		select {
		case v.(chan Kind) <- k:
		default:
		}
		return true
	})
}

// powerHooks holds each running watcher's power queue, keyed by the
// watcher.
var powerHooks sync.Map // *Watcher → chan Kind

// powerQueue is how many power events wait for a watcher.
const powerQueue = 8

// listenPower registers w for PowerEvent until stop is called.
func (w *Watcher) listenPower() (events <-chan Kind, stop func()) {
	ch := make(chan Kind, powerQueue)
	powerHooks.Store(w, ch)
	return ch, func() { powerHooks.Delete(w) }
}

// powerFilter drops the second of the two resume events Windows sends
// for one resume (PBT_APMRESUMEAUTOMATIC always, then
// PBT_APMRESUMESUSPEND when a user is present), so one resume is one
// Resume. A resume after a suspend the watcher missed still counts.
type powerFilter struct{ last Kind }

func (f *powerFilter) pass(k Kind) bool {
	if k == Resume && f.last == Resume {
		return false
	}
	f.last = k
	return true
}
