package relay

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
)

// spliceBuffer is each direction's copy buffer.
const spliceBuffer = 32 << 10

// splice copies both ways until either side ends, within the configured
// byte and time limits, and returns the bytes moved.
func (r *Relay) splice(x, y network.Stream) int64 {
	ctx, cancel := context.WithCancel(context.Background())
	if r.cfg.MaxDuration > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), r.cfg.MaxDuration)
	}
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go r.copy(&wg, cancel, &total, x, y)
	go r.copy(&wg, cancel, &total, y, x)
	<-ctx.Done()
	x.Reset()
	y.Reset()
	wg.Wait()
	return total.Load()
}

// copy moves src to dst until either fails or the session's byte limit
// is passed, then cancels the splice.
func (r *Relay) copy(wg *sync.WaitGroup, cancel context.CancelFunc, total *atomic.Int64, dst, src network.Stream) {
	defer wg.Done()
	defer cancel()
	buf := make([]byte, spliceBuffer)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			r.bytes.Add(float64(n))
			if sum := total.Add(int64(n)); r.cfg.MaxBytes > 0 && sum > r.cfg.MaxBytes {
				r.cfg.Logger.Warn("relayed session over its byte limit", "limit", r.cfg.MaxBytes)
				return
			}
		}
		if err != nil {
			return
		}
	}
}
