package session

// EachSession calls fn for every session the agents bridged to this broker
// reported: its path as the agent named it, and whether it waits for the
// person at the machine to approve it. The path comes from the agent, so
// a reader that turns it into a label or a key must map it onto a fixed
// set first. fn runs under the table's read lock: it must be quick and
// must not call back into st.
func (st *Status) EachSession(fn func(path string, waiting bool)) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, m := range st.machines {
		for i := range m.sessions {
			fn(m.sessions[i].Path, m.sessions[i].State == waitingForApproval)
		}
	}
}
