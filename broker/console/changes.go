package console

import "sync"

// Changes tells event streams that something the console shows may have
// changed: a store commit, a machine coming or going, a session report.
// Each Notify closes the channel current readers wait on.
type Changes struct {
	mu  sync.Mutex
	ch  chan struct{} // mu guards all following fields; closed by the next Notify
	gen uint64        // how many Notify calls there have been
}

// NewChanges returns a Changes with no reader.
func NewChanges() *Changes { return &Changes{ch: make(chan struct{})} }

// Notify wakes every reader waiting now.
func (c *Changes) Notify() {
	c.mu.Lock()
	close(c.ch)
	c.ch = make(chan struct{})
	c.gen++
	c.mu.Unlock()
}

// wait returns a channel closed by the next Notify, and the generation it
// ends.
func (c *Changes) wait() (<-chan struct{}, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch, c.gen
}
