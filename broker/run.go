package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// Run serves until ctx is done, then shuts down and returns nil, or returns
// the first error that stops the broker. The ready callback, if not nil, is
// called once broker.json and the admin credential are written.
func (b *Broker) Run(ctx context.Context, ready func(info wire.BrokerInfo, credentialPath string)) error {
	defer b.Close()
	cred, err := b.admit.EnsureAdmin()
	if err != nil {
		return err
	}
	b.reach.LoadNotes() // before any presence stream writes a newer note
	b.handle()
	if err := atomicfile.WriteJSON(filepath.Join(b.cfg.DataDir, InfoFile), b.Info(), 0o644); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loops sync.WaitGroup
	run := func(f func(context.Context)) { loops.Go(func() { f(ctx) }) }
	errc := make(chan error, 1)
	b.startHTTP(ctx, &loops, errc)
	b.startLoops(run)
	b.startControl(ctx, &loops)
	if b.cluster != nil {
		if err := b.startCluster(ctx, run); err != nil {
			cancel()
			b.stop(&loops)
			return fmt.Errorf("broker: cluster: %w", err)
		}
	}
	if ready != nil {
		ready(b.Info(), cred)
	}
	b.log.Info("broker ready", "peer_id", b.ID(), "name", b.cfg.Name, "region", b.cfg.Region)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	cancel()
	b.stop(&loops)
	return err
}

// startLoops starts the rooms' own goroutines.
func (b *Broker) startLoops(run func(func(context.Context))) {
	run(b.reach.Run)    // last-seen flush
	run(b.queue.Run)    // dispatch
	run(b.rollouts.Run) // the rollout driver
	run(b.releases.Run) // blob sweeps; stops pulls at the end
	run(b.alerts.Run)   // evaluation and webhook
	run(b.sessions.Run) // the STUN and TURN port
	run(b.repl.Run)     // pulls and tombstone purge
	run(b.revoker.Run)  // ends what revoked parties hold open
}

// stop shuts down in order, once ctx is cancelled: leave the cluster first,
// so the other brokers see this one leave rather than fail; then note the
// machines bridged here (reach.Layer.Stopping: the stop, not they, ends
// their bridges) and stop accepting bridges so no presence stream opens
// while the last-seen times are written; then wait for the goroutines;
// then keep the away notes for the next start (reach.Layer.SaveNotes);
// then (in Close, deferred by Run) close the store.
func (b *Broker) stop(loops *sync.WaitGroup) {
	if b.cluster != nil {
		b.cluster.Close()
	}
	b.reach.Stopping()
	b.host.Close()
	loops.Wait()
	b.reach.Flush()
	b.reach.SaveNotes()
}

// startHTTP serves health, metrics and the web console until ctx ends;
// handlers still running 2 s after that are cut off.
func (b *Broker) startHTTP(ctx context.Context, loops *sync.WaitGroup, errc chan<- error) {
	if b.httpLn == nil {
		return
	}
	srv, ln := b.httpServer()
	loops.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("broker: http: %w", err)
		}
	})
	loops.Go(func() {
		<-ctx.Done()
		b.console.Close() // event streams end
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
}
