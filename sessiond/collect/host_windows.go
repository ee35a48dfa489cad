package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/readymesh/readymesh/peer/wire"
)

// Host returns the collectors for the machine the agent runs on.
// Not finished on windows: only the agent, OS family, hostname and addresses
// are collected yet.
func Host(cfg Config) []Collector {
	m := cfg.machine()
	return []Collector{
		Agent(cfg),
		newFunc("os", func(context.Context, *wire.Snapshot) error {
			return fmt.Errorf("os: not collected on %s yet", runtime.GOOS)
		}),
		newFunc("hostname", func(_ context.Context, s *wire.Snapshot) error {
			h, err := os.Hostname()
			s.Hostname = h
			return err
		}),
		newFunc("addresses", m.collectAddresses),
	}
}

// Load1 is not read on windows yet.
func Load1() (float64, error) { return 0, fmt.Errorf("load on %s: %w", runtime.GOOS, errors.ErrUnsupported) }

// Users is not read on windows yet.
func Users() ([]string, error) { return nil, fmt.Errorf("users on %s: %w", runtime.GOOS, errors.ErrUnsupported) }
