package releases

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

// Sources: before a pull, the broker asks the other brokers (has) which
// of them holds the blob whole. The questions go out at once, at most
// maxAsks at a time, each within Config.AskTimeout: a dead or silent
// broker costs its own question, not the pull's start, which is the
// first answer "whole". The brokers that answer so later, in the order
// of their answers, are where the pull goes on if that one fails or is
// too slow (Config.MinPullRate). The questions still out when the pull
// ends are cancelled.

// maxAsks bounds the questions in flight for one pull. Clusters are a
// few brokers: all of them are asked at once but in a large one.
const maxAsks = 8

// sources is what the other brokers answered of one blob, as the
// answers come in. Its asks are owned by the pull that made it, which
// stops them (stop) before it ends.
type sources struct {
	// whole receives the brokers that hold the blob whole, in the order
	// of their answers. Its capacity is the number of brokers asked, so
	// an ask never blocks on it.
	whole  chan peer.ID
	asked  chan struct{} // closed once every ask has ended
	cancel context.CancelFunc

	// Owned by the pull's goroutine.
	slow []peer.ID // dropped as too slow: the last resort
}

// askSources asks the other brokers, at once, whether they hold p's
// blob whole, and returns the answers as they come.
func (r *Room) askSources(p *pull) *sources {
	brokers := r.deps.Cluster.Brokers()
	ctx, cancel := context.WithCancel(r.ctx)
	src := &sources{whole: make(chan peer.ID, len(brokers)), asked: make(chan struct{}), cancel: cancel}
	todo := make(chan peer.AddrInfo, len(brokers))
	for _, b := range brokers {
		todo <- b
	}
	close(todo)
	var wg sync.WaitGroup
	for range min(maxAsks, len(brokers)) {
		wg.Go(func() {
			for b := range todo {
				if ctx.Err() != nil {
					return
				}
				if r.holdsWhole(ctx, b, p) {
					src.whole <- b.ID
				}
			}
		})
	}
	go func() { // the last of the asks' goroutines: ends with them
		wg.Wait()
		close(src.asked)
	}()
	return src
}

// holdsWhole asks broker b, within Config.AskTimeout, whether it holds
// p's blob whole. A broker that does not answer is taken to hold
// nothing.
func (r *Room) holdsWhole(ctx context.Context, b peer.AddrInfo, p *pull) bool {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AskTimeout)
	defer cancel()
	rep, err := r.ask(ctx, b, &wire.BlobRequest{Op: wire.BlobHas, SHA256: p.sha, Size: p.size})
	if err != nil {
		r.log.Debug("release blob: a broker did not say what it holds", "broker", b.ID.String(), "err", err)
		return false
	}
	return rep.Have == p.size
}

// next returns the broker to pull from next: the next that answered it
// holds the blob whole, waiting for answers while questions are out;
// once every question has ended, those dropped as too slow, which beat
// nothing. ok is false when none is left or ctx ends.
func (src *sources) next(ctx context.Context) (id peer.ID, ok bool) {
	select {
	case id := <-src.whole:
		return id, true
	case <-src.asked:
	case <-ctx.Done():
		return "", false
	}
	select { // an answer sent before the last ask ended
	case id := <-src.whole:
		return id, true
	default:
	}
	if len(src.slow) == 0 {
		return "", false
	}
	id = src.slow[0]
	src.slow = src.slow[1:]
	return id, true
}

// known reports whether a broker that holds the blob whole, and that was
// not dropped as too slow, waits its turn. Safe for concurrent use.
func (src *sources) known() bool { return len(src.whole) > 0 }

// dropSlow keeps id, dropped as too slow, as a last resort.
func (src *sources) dropSlow(id peer.ID) { src.slow = append(src.slow, id) }

// stop ends the questions still out and waits for their goroutines.
func (src *sources) stop() {
	src.cancel()
	<-src.asked
}
