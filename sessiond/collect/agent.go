package collect

import (
	"context"
	"errors"

	"github.com/readymesh/readymesh/peer/wire"
)

// Agent returns the collector that copies cfg's AgentVersion, Runtime and
// Approval into the snapshot. Linux includes it; run it before a Fixture to
// supply the fields the fixture leaves out.
func Agent(cfg Config) Collector {
	return newFunc("agent", func(_ context.Context, s *wire.Snapshot) error {
		s.AgentVersion = cfg.AgentVersion
		s.Runtime = cfg.Runtime
		s.Approval = cfg.Approval
		if cfg.AgentVersion == "" {
			return errors.New("agent version is not set")
		}
		return nil
	})
}
