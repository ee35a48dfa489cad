package sysevents

import (
	"context"
	"time"
)

// run delivers the power events package service hands over (PowerEvent)
// and the connection's cost from the IP helper's connectivity hint, until
// ctx ends. Shutdown is not an event here: the SCM stops the service,
// and the agent reads service.ErrShutdown as its context's cause.
func (w *Watcher) run(ctx context.Context) {
	power, stop := w.listenPower()
	defer stop()

	var changed <-chan struct{} // nil while the cost cannot be watched
	if c, err := watchCost(); err != nil {
		w.log.Warn("sysevents: cannot tell whether the connection is metered", "err", err)
	} else {
		defer c.close()
		changed = c.changed
		w.readCost(ctx)
	}

	var filter powerFilter
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-power:
			if !filter.pass(k) {
				continue
			}
			w.log.Info("sysevents: power event", "kind", k)
			w.deliver(ctx, Event{Kind: k, At: time.Now()})
		case <-changed:
			w.readCost(ctx)
		}
	}
}

// readCost reads the connectivity hint and records it.
func (w *Watcher) readCost(ctx context.Context) {
	h, err := readHint()
	if err != nil {
		w.log.Warn("sysevents: cannot read the connection's cost", "err", err)
		return
	}
	metered, detail := hintMetered(h)
	w.setMetered(ctx, metered, detail)
}
