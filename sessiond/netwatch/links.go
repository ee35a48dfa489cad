package netwatch

// maxLinks bounds a links table. The kernel, not a caller, names its keys,
// but tunnels come and go under new indexes on a machine that runs for
// months; when the table is full it starts over, at worst counting one
// link change too many.
const maxLinks = 1024

// links remembers whether each network link was last seen up, so that a
// link notification counts only when it changes that. Both macOS
// (RTM_IFINFO) and Windows (an IP interface parameter notification) report
// much more than links going up and down. The zero value is empty and
// ready; it is owned by one goroutine.
type links[K comparable] struct {
	up map[K]bool
}

// set records whether link k is up and reports whether that is news: a
// known link changed state, or a link not seen before is up.
func (l *links[K]) set(k K, up bool) bool {
	was, known := l.up[k]
	if !known && len(l.up) >= maxLinks {
		clear(l.up)
	}
	if l.up == nil {
		l.up = make(map[K]bool)
	}
	l.up[k] = up
	if known {
		return was != up
	}
	return up
}

// forget drops link k, which was removed or re-created.
func (l *links[K]) forget(k K) {
	delete(l.up, k)
}
