package releases

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The pull's throughput floor: Config.Idle alone lets a source that
// trickles just above 35 KB/s keep a pull for a whole binary, while the
// agents waiting on it wait as long. So each pull from a source is
// watched: after a grace of one Config.PullRateWindow (the connection
// warming up), a window in which the source sent fewer bytes than
// Config.MinPullRate allows ends the pull from it if another broker
// holding the blob is known, and the pull resumes from that one at what
// the store holds. With no other, the slow source is kept: slow beats
// nothing. The window counts what the pull read, so the store's commits
// count against the source too: milliseconds a chunk, far below a
// window.

// errTooSlow ends a pull from a source left for another, which may be
// faster. A source left so is tried again once no other is left.
var errTooSlow = errors.New("slower than the floor of Config.MinPullRate while another broker holds the blob")

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// rateWatch watches one pull from one source.
type rateWatch struct {
	quit    chan struct{}
	done    chan struct{}
	dropped atomic.Bool // the source was cut off as too slow
}

// watchRate watches the bytes body has read from broker id for p, and
// calls cut (which must make the pull's reads fail) when the source is
// too slow and src knows another. stop ends the watch.
func (r *Room) watchRate(p *pull, id peer.ID, src *sources, body *countingReader, cut func()) *rateWatch {
	w := &rateWatch{quit: make(chan struct{}), done: make(chan struct{})}
	floor, window := r.cfg.MinPullRate, r.cfg.PullRateWindow
	if floor <= 0 {
		close(w.done)
		return w
	}
	least := int64(float64(floor) * window.Seconds())
	go func() {
		defer close(w.done)
		tk := time.NewTicker(window)
		defer tk.Stop()
		last, judged, told := int64(0), false, false
		for {
			select {
			case <-w.quit:
				return
			case <-tk.C:
			}
			n := body.n.Load()
			moved := n - last
			last = n
			if !judged { // the grace window
				judged = true
				continue
			}
			if moved >= least {
				continue
			}
			rate := int64(float64(moved) / window.Seconds())
			if src.known() {
				r.log.Info("release blob: leaving a slow broker for another that holds the blob", "blob", p.sha,
					"broker", id.String(), "bytes_per_sec", rate, "floor", floor)
				w.dropped.Store(true)
				cut()
				return
			}
			if !told {
				r.log.Warn("release blob: pulling from a broker slower than the floor, as no other holds the blob",
					"blob", p.sha, "broker", id.String(), "bytes_per_sec", rate, "floor", floor)
				told = true
			}
		}
	}()
	return w
}

// stop ends the watch and waits for it.
func (w *rateWatch) stop() {
	select {
	case <-w.done:
	default:
		close(w.quit)
		<-w.done
	}
}
