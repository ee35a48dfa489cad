package collect

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// updateSearcher runs one Windows Update search. On Windows it is the
// Windows Update Agent's COM API; tests give a fake.
type updateSearcher interface {
	// Search returns the updates matching criteria. It blocks until the
	// agent answers, which can take minutes, and cannot be cancelled.
	Search(criteria string) ([]wuaUpdate, error)
}

// wuaCollector runs update searches one at a time, each bounded in time
// for its caller.
//
// A COM call cannot be cancelled. When a search outlasts its bound, the
// collector reports an error and the search goes on in its goroutine,
// which ends when the agent answers. Until then no other search starts:
// the collector that asks reports that the earlier one is still running.
// A search that ends after its caller gave up is not wasted: its result
// is kept and is what the next collection reports, without a new search.
// So a machine whose searches always take longer than the bound still
// reports its updates, one check-in late.
type wuaCollector struct {
	search updateSearcher // immutable

	mu      sync.Mutex // guards the following fields
	running bool       // a search is in flight
	started time.Time  // when the running search started
	waiting bool       // the running search's caller still waits for it
	late    *wuaResult // a search that ended after its caller gave up
}

// wuaResult is the outcome of one search.
type wuaResult struct {
	updates []wuaUpdate
	err     error
	ended   time.Time
}

func newWUACollector(s updateSearcher) *wuaCollector {
	return &wuaCollector{search: s}
}

// collect fills s.PendingUpdates from a search bounded by timeout (or
// from the late result of an earlier one). When it cannot answer it
// returns an error saying why and leaves s.PendingUpdates nil, so the
// snapshot says "unknown", never "none pending".
func (w *wuaCollector) collect(ctx context.Context, timeout time.Duration, log *slog.Logger, s *wire.Snapshot) error {
	res, err := w.result(ctx, timeout, log)
	if err != nil {
		return fmt.Errorf("pending updates: %w", err)
	}
	if res.err != nil {
		return fmt.Errorf("pending updates: Windows Update Agent: %w", res.err)
	}
	ups, total := pendingFromWUA(res.updates)
	s.PendingUpdates = ups
	log.Debug("collected pending updates", "count", len(ups), "ended", res.ended)
	if total > len(ups) {
		return fmt.Errorf("pending updates: %d updates pending, reporting the first %d", total, len(ups))
	}
	return nil
}

// result returns a late result if there is one, else starts a search and
// waits for it up to timeout. The error is about the wait; the search's
// own error is in the result.
func (w *wuaCollector) result(ctx context.Context, timeout time.Duration, log *slog.Logger) (wuaResult, error) {
	w.mu.Lock()
	if late := w.late; late != nil {
		w.late = nil
		w.mu.Unlock()
		log.Debug("reporting a Windows Update search that ended after its check-in", "ended", late.ended)
		return *late, nil
	}
	if w.running {
		since := time.Since(w.started).Round(time.Second)
		w.mu.Unlock()
		return wuaResult{}, fmt.Errorf("a Windows Update search started %v ago is still running; "+
			"a COM call cannot be cancelled, so no other search starts until it ends", since)
	}
	done := make(chan wuaResult, 1)
	w.running, w.started, w.waiting = true, time.Now(), true
	w.mu.Unlock()

	go w.run(done)
	return w.wait(ctx, timeout, done)
}

// run is the search's goroutine. It hands the result to the waiting
// caller, or keeps it for the next collection if the caller gave up.
func (w *wuaCollector) run(done chan<- wuaResult) {
	ups, err := w.searchOnce()
	res := wuaResult{updates: ups, err: err, ended: time.Now()}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = false
	if w.waiting {
		done <- res // buffered: never blocks
		return
	}
	w.late = &res
}

// searchOnce runs the search, turning a panic into an error: it runs on
// its own goroutine, out of reach of the collector's recovery.
func (w *wuaCollector) searchOnce() (ups []wuaUpdate, err error) {
	defer func() {
		if r := recover(); r != nil {
			ups, err = nil, fmt.Errorf("search panicked: %v", r)
		}
	}()
	return w.search.Search(wuaCriteria)
}

// wait waits for the search up to timeout or until ctx ends. Giving up is
// decided under the lock, so a result that arrives at that moment is
// either taken here or kept as late, never lost.
func (w *wuaCollector) wait(ctx context.Context, timeout time.Duration, done <-chan wuaResult) (wuaResult, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why error
	select {
	case res := <-done:
		return res, nil
	case <-timer.C:
		why = fmt.Errorf("the Windows Update search is not done after %v", timeout)
	case <-ctx.Done():
		why = fmt.Errorf("the Windows Update search was abandoned: %w", ctx.Err())
	}
	w.mu.Lock()
	w.waiting = false
	w.mu.Unlock()
	select {
	case res := <-done:
		return res, nil
	default:
	}
	return wuaResult{}, fmt.Errorf("%w; a COM call cannot be cancelled, so it goes on in the background, "+
		"no other search starts until it ends, and the next collection reports its result", why)
}
