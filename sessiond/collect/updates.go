package collect

import (
	"context"
	"errors"
	"fmt"

	"github.com/readymesh/readymesh/peer/wire"
)

// collectUpdates fills s.PendingUpdates from the machine's package
// manager: apt-get, else dnf, else yum. The run is bounded by the
// configured AptTimeout.
func (m machine) collectUpdates(ctx context.Context, s *wire.Snapshot) error {
	if !m.isHost() {
		return fmt.Errorf("pending updates: cannot simulate an upgrade below root %q", m.root)
	}
	ctx, cancel := context.WithTimeout(ctx, m.aptTimeout)
	defer cancel()
	ups, err := m.updates(ctx)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("pending updates: not done after %v: %w", m.aptTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("pending updates: %w", err)
	}
	s.PendingUpdates = ups
	m.log.Debug("collected pending updates", "count", len(ups))
	return nil
}

func (m machine) updates(ctx context.Context) ([]wire.PendingUpdate, error) {
	if aptGet, err := m.lookPath("apt-get"); err == nil {
		return m.aptUpdates(ctx, aptGet)
	}
	for _, name := range []string{"dnf", "yum"} {
		if p, err := m.lookPath(name); err == nil {
			return m.dnfUpdates(ctx, p)
		}
	}
	return nil, errors.New("no supported package manager (apt-get, dnf, yum)")
}
