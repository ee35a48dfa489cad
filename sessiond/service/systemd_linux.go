package service

import (
	"os"
	"time"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// settle is how long install watches the started agent: it reads its
// state and dials its broker within it, so an agent that cannot (not
// enrolled, its database held by another) has exited by then.
const settle = 3 * time.Second

func newSystem() (system, error) {
	return &systemdSystem{units: &systemd.Manager{Systemctl: systemd.Command, Settle: settle},
		euid: os.Geteuid, booted: systemd.Booted}, nil
}
