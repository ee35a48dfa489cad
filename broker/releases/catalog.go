package releases

import (
	"encoding/json"
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
	// unparsed are the releases whose manifests this broker cannot
	// check (a newer format, most likely); opaque those of them whose
	// binaries it could not even find. The sweep keeps the binaries of
	// the first and sweeps nothing while there are any of the second.
	unparsed, opaque []string
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
	// unparsed is a release naming the blob whose manifest does not
	// parse here: never offered to agents, never swept.
	unparsed string
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
	c.unparsed, c.opaque = nil, nil
	for _, rec := range recs {
		// Every stored manifest was verified when it was published (here
		// or on the broker it replicated from); parsing is enough.
		m, err := release.Parse(rec.Manifest)
		if err != nil {
			c.noteUnparsed(blobs, rec.Version, rec.Manifest)
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

// noteUnparsed records a release whose manifest does not parse here: the
// blobs it names, read loosely, are kept by the sweep, since a broker
// that cannot read a manifest cannot tell its binaries are unused.
func (c *catalog) noteUnparsed(blobs map[string]named, version string, manifest []byte) {
	c.unparsed = append(c.unparsed, version)
	var loose struct {
		Binaries []struct {
			SHA256 string `json:"sha256"`
		} `json:"binaries"`
	}
	if json.Unmarshal(manifest, &loose) != nil || len(loose.Binaries) == 0 {
		c.opaque = append(c.opaque, version)
		return
	}
	for _, b := range loose.Binaries {
		n := blobs[b.SHA256]
		n.unparsed = version
		blobs[b.SHA256] = n
	}
}

// snapshot returns every named blob, read afresh, with the releases
// whose manifests do not parse here and those of them naming no binary
// it could read.
func (c *catalog) snapshot() (blobs map[string]named, unparsed, opaque []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = time.Time{}
	if err := c.refreshLocked(); err != nil {
		return nil, nil, nil, err
	}
	return c.blobs, c.unparsed, c.opaque, nil
}
