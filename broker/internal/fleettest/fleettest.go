// Package fleettest gives the broker's tests and benchmarks real stores:
// Open and Enrol for the rooms' unit tests, and Seed, which fills a store
// with n machines of one client, each enrolled and checked in once with a
// snapshot of about 1.5 KB, so that benchmarks measure the same fleet.
package fleettest

import (
	"fmt"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Seed enrols and checks in n machines of client in st, 256 at a time.
func Seed(st *store.Store, client string, n int) error {
	now := time.Now()
	if _, err := st.CreateClient(client, now); err != nil {
		return err
	}
	hash := wire.HashSecret(wire.NewSecret())
	if err := st.CreateToken(hash, store.Token{Client: client, UsesLeft: n, Uses: n, ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		return err
	}
	const workers = 256
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := seedOne(st, hash, fmt.Sprintf("bench-machine-%07d", i), now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func seedOne(st *store.Store, tokenHash, id string, now time.Time) error {
	if _, err := st.Enroll(store.EnrollRequest{TokenHash: tokenHash, MachineID: id, Name: id, Now: now}); err != nil {
		return err
	}
	ci := &wire.CheckIn{MachineID: id, Seq: 1, Reason: wire.ReasonEnroll, Snapshot: Snapshot(id)}
	_, err := st.CheckIn(ci, now)
	return err
}

// Snapshot is a Debian machine's snapshot with 20 packages and one pending
// security update.
func Snapshot(host string) wire.Snapshot {
	s := wire.Snapshot{CollectedAt: time.Now(), Hostname: host, AgentVersion: "0.1.0",
		OS:      wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 12", Version: "12", Arch: "amd64"},
		Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600, ConsentPolicy: wire.ConsentNever}}
	for i := 0; i < 20; i++ {
		s.Packages = append(s.Packages, wire.Package{Name: fmt.Sprintf("pkg-%02d", i), Version: "1.0." + fmt.Sprint(i)})
	}
	s.PendingUpdates = []wire.PendingUpdate{{ID: "openssl", Version: "3.0.13", Source: "apt", Security: true}}
	return s
}
