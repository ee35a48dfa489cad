package console

import "slices"

// EndSignIns ends the console sign-ins and unused sign-in codes of the
// given technician keys (a technician disabled or removed): their event
// streams get "signed-out" and end, and their next request is refused. It
// returns how many sign-ins ended.
func (c *Console) EndSignIns(keys []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, ws := range c.sessions {
		if slices.Contains(keys, ws.key) {
			c.endSessionLocked(k)
			n++
		}
	}
	for k, cd := range c.codes {
		if slices.Contains(keys, cd.key) {
			delete(c.codes, k)
		}
	}
	return n
}
