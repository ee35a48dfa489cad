package tech

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// A technician fails over to the brokers its home stores (Config.Brokers),
// so the list must follow the cluster: brokers join after the technician
// logged in, leave, move. meshctl holds a bridge only while a command
// runs, so the command refreshes the list over that bridge: a client from
// Open asks its broker for the cluster's brokers as it opens (beside the
// command's own request, on the same connection) and every refreshEvery
// while it stays open (a terminal session, meshctl wait), and stores the
// list when it changed. A broker too old to answer, or a refresh cut short,
// leaves the stored list as it was.

// refreshEvery is how often an open client asks again: a long-lived
// meshctl learns of a change within this. Tests shorten it.
var refreshEvery = 5 * time.Second

const (
	// refreshTimeout bounds one refresh.
	refreshTimeout = 10 * time.Second
	// closeWait bounds how long Close waits for the first refresh of a
	// command quicker than it.
	closeWait = 2 * time.Second
)

// refresher keeps a client's stored broker list current while it is open.
type refresher struct {
	cancel   context.CancelFunc
	first    chan struct{} // closed once the first refresh ended
	stopped  chan struct{} // closed when the goroutine returned
	stopOnce sync.Once
}

// startRefresh starts c's refresher; Close stops it.
func startRefresh(c *Client) *refresher {
	ctx, cancel := context.WithCancel(context.Background())
	r := &refresher{cancel: cancel, first: make(chan struct{}), stopped: make(chan struct{})}
	go r.run(ctx, c)
	return r
}

func (r *refresher) run(ctx context.Context, c *Client) {
	defer close(r.stopped)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for first := true; ; first = false {
		c.refreshBrokers(ctx)
		if first {
			close(r.first)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop waits up to closeWait for the first refresh, then ends the
// refresher and waits for it.
func (r *refresher) stop() {
	r.stopOnce.Do(func() {
		select {
		case <-r.first:
		case <-time.After(closeWait):
		}
		r.cancel()
		<-r.stopped
	})
}

// refreshBrokers asks the broker for the cluster's brokers and stores them.
func (c *Client) refreshBrokers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	var ms []wire.BrokerMember
	if err := c.Do(ctx, wire.OpBrokers, nil, &ms); err != nil {
		return // an older broker, or cut short: keep what is stored
	}
	c.RememberBrokers(ms)
}

// RememberBrokers stores the cluster's brokers that are not dead or gone
// for failover, when they differ from those stored.
func (c *Client) RememberBrokers(ms []wire.BrokerMember) error {
	var list []wire.BrokerInfo
	for _, m := range ms {
		if m.PeerID != "" && len(m.Bridge) > 0 && m.State != "dead" && m.State != "left" && len(list) < wire.MaxBrokers {
			list = append(list, wire.BrokerInfo{PeerID: m.PeerID, Addrs: m.Bridge, HTTP: m.HTTP, Name: m.Name, Region: m.Region})
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.EqualFunc(list, c.Config.Brokers, sameBroker) {
		return nil
	}
	c.Config.Brokers = list
	if c.home == "" {
		return nil
	}
	return saveConfig(c.home, c.Config)
}

func sameBroker(a, b wire.BrokerInfo) bool {
	return a.PeerID == b.PeerID && slices.Equal(a.Addrs, b.Addrs) && a.HTTP == b.HTTP && a.Name == b.Name && a.Region == b.Region
}

// config returns a copy of the stored login.
func (c *Client) config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.Config
	cfg.Brokers = slices.Clone(cfg.Brokers)
	return cfg
}
