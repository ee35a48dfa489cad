package netwatch

import (
	"context"
	"time"
)

// debounce folds the event counts arriving on in into Changes on out: the
// first event of a burst opens a window of the given length, and when it
// closes every event seen meanwhile becomes one Change. The window is not
// extended by later events, so a flapping link still yields a Change every
// window rather than none at all.
//
// It returns when ctx is done or in is closed; a burst still open then is
// dropped, since nobody is left to check in. Sending a Change waits for the
// reader; events keep queueing in the kernel meanwhile.
func debounce(ctx context.Context, in <-chan int, window time.Duration, out chan<- Change) {
	var (
		pending int
		fire    <-chan time.Time // nil while no window is open
	)
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-in:
			if !ok {
				return
			}
			if pending == 0 {
				fire = time.After(window)
			}
			pending += n
		case at := <-fire:
			select {
			case out <- Change{At: at, Events: pending}:
			case <-ctx.Done():
				return
			}
			pending, fire = 0, nil
		}
	}
}
