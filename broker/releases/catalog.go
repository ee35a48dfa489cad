package releases

import (
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/release"
)

// catalogTTL is how long the catalog answers from what it last read: a
// withdrawal replicated from another broker stops downloads here within
// it (this broker's own publications and withdrawals at once), and a
// thousand agents asking in the same second cost one read of the
// releases.
const catalogTTL = time.Second

// catalog is which blobs the published releases name: the blobs agents
// may download, and those the sweep keeps.
type catalog struct {
	records Records
	now     func() time.Time

	mu    sync.Mutex // guards all following fields
	read  time.Time  // when blobs was read; zero: read again
	blobs map[string]named
}

// named is what the releases say of one blob.
type named struct {
	size int64
	// live is a release that names the blob and is not withdrawn, else "".
	live string
	// withdrawn is a withdrawn release that names it, and lastWithdrawal
	// the latest withdrawal of those that do.
	withdrawn      string
	lastWithdrawal time.Time
}

// lookup returns what the releases say of blob sha.
func (c *catalog) lookup(sha string) (named, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refreshLocked(); err != nil {
		return named{}, false, err
	}
	n, ok := c.blobs[sha]
	return n, ok, nil
}

// invalidate makes the next lookup read the releases again.
func (c *catalog) invalidate() {
	c.mu.Lock()
	c.read = time.Time{}
	c.mu.Unlock()
}

// snapshot returns every named blob, read afresh.
func (c *catalog) snapshot() (map[string]named, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = time.Time{}
	if err := c.refreshLocked(); err != nil {
		return nil, err
	}
	return c.blobs, nil
}

func (c *catalog) refreshLocked() error {
	now := c.now()
	if !c.read.IsZero() && now.Sub(c.read) < catalogTTL && !now.Before(c.read) {
		return nil
	}
	recs, err := c.records.Releases()
	if err != nil {
		return err
	}
	blobs := map[string]named{}
	for _, rec := range recs {
		// Every stored manifest was verified when it was published (here
		// or on the broker it replicated from); parsing is enough.
		m, err := release.Parse(rec.Manifest)
		if err != nil {
			continue
		}
		for _, b := range m.Binaries {
			n := blobs[b.SHA256]
			n.size = b.Size
			if !rec.Withdrawn {
				n.live = rec.Version
			} else {
				n.withdrawn = rec.Version
				if rec.WithdrawnAt.After(n.lastWithdrawal) {
					n.lastWithdrawal = rec.WithdrawnAt
				}
			}
			blobs[b.SHA256] = n
		}
	}
	c.blobs, c.read = blobs, now
	return nil
}
