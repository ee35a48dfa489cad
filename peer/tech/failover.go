package tech

import (
	"context"
	"errors"
	"time"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// dialStagger is how long Open waits on one broker before it dials the
// next as well. A broker that died says nothing: its QUIC handshake
// times out after 5 s (and a TCP dial to a lost host takes longer), and
// every command would wait that long while a technician's login broker is
// down. A live broker answers a handshake within a few round trips, well
// under this.
const dialStagger = time.Second

// dialFirst dials the candidates in order, starting the next one when the
// last started has failed or has not connected within stagger, and
// returns the first client that connects. It closes the others and
// returns only once every dial it started has ended.
func dialFirst(ctx context.Context, key *identity.Key, cands []wire.BrokerInfo, stagger time.Duration) (*Client, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c   *Client
		err error
	}
	results := make(chan result, len(cands))
	next, pending := 0, 0
	start := func() {
		b := cands[next]
		next, pending = next+1, pending+1
		go func() {
			c, err := dial(ctx, key, b)
			results <- result{c, err}
		}()
	}
	start()
	timer := time.NewTimer(stagger)
	defer timer.Stop()
	var won *Client
	var errs []error
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			switch {
			case r.err == nil && won == nil:
				won = r.c
				cancel() // the dials still running are losers
			case r.err == nil:
				r.c.Close()
			case won == nil:
				errs = append(errs, r.err)
				if next < len(cands) && ctx.Err() == nil {
					start()
					timer.Reset(stagger)
				}
			}
		case <-timer.C:
			if won == nil && next < len(cands) {
				start()
				timer.Reset(stagger)
			}
		}
	}
	if won != nil {
		return won, nil
	}
	return nil, errors.Join(errs...)
}
