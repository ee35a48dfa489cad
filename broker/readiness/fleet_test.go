package readiness

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// now is the fixed clock of every test.
var now = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// ago returns a pointer to now minus d.
func ago(d time.Duration) *time.Time {
	t := now.Add(-d)
	return &t
}

// fleet is a generated population of machines and their live reachability.
type fleet struct {
	machines []store.Machine
	reach    map[string]wire.Reachability
	clients  map[string]bool
}

func (f *fleet) reachOf(m *store.Machine) wire.Reachability { return f.reach[m.ID] }
func (f *fleet) visible(client string) bool                 { return f.clients[client] }

// genFleet generates n machines that look like an MSP's fleet: about 50
// machines a client, mostly Windows, mostly current and ready, with some
// behind, stale, never checked in or waiting for consent, about 20% with
// pending updates, and half of them online. It is deterministic in seed.
func genFleet(n int, seed uint64) *fleet {
	r := rand.New(rand.NewPCG(seed, 0x7265616479))
	f := &fleet{
		machines: make([]store.Machine, n),
		reach:    make(map[string]wire.Reachability, n),
		clients:  map[string]bool{},
	}
	clients := max(1, n/50)
	for i := range f.machines {
		m := &f.machines[i]
		genMachine(r, m, fmt.Sprintf("client-%04d", r.IntN(clients)))
		f.clients[m.Client] = true
		f.reach[m.ID] = genReach(r)
	}
	return f
}

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func genID(r *rand.Rand) string {
	b := []byte("12D3KooW")
	for range 44 {
		b = append(b, base58[r.IntN(len(base58))])
	}
	return string(b)
}

func genMachine(r *rand.Rand, m *store.Machine, client string) {
	m.ID = genID(r)
	m.Client = client
	m.Name = genName(r)
	m.Hostname = m.Name + ".corp.example"
	m.EnrolledAt = now.Add(-time.Duration(r.Int64N(int64(365 * day))))
	if r.IntN(100) < 2 { // enrolled, never checked in
		return
	}
	m.Runtime = genRuntime(r)
	m.LastCheckIn = genCheckIn(r, m.Runtime.CheckInIntervalSec)
	if r.IntN(100) >= 1 {
		m.OS = genOS(r)
	}
	m.AgentVersion = pick(r, []string{"1.4.0", "1.4.0", "1.4.0", "1.4.0", "1.4.0", "1.4.0", "1.3.2", "1.2.0"})
	m.Approval = genApproval(r)
	if r.IntN(100) < 20 {
		m.PendingUpdates = genPending(r, m.OS)
	}
}

// genName returns a machine name as MSPs meet them: Windows' default
// DESKTOP-XXXXXXX, or a naming scheme with a short prefix and a number.
func genName(r *rand.Rand) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	if r.IntN(3) == 0 {
		b := []byte("DESKTOP-")
		for range 7 {
			b = append(b, alnum[r.IntN(len(alnum))])
		}
		return string(b)
	}
	return fmt.Sprintf("%s-%04d", pick(r, []string{"pc", "lt", "srv", "pos", "ws"}), r.IntN(10_000))
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

func genRuntime(r *rand.Rand) wire.RuntimeConfig {
	rc := wire.RuntimeConfig{CheckInIntervalSec: 3600, HeartbeatSec: 30, ConsentPolicy: wire.ConsentNever}
	switch r.IntN(10) {
	case 0:
		rc.CheckInIntervalSec = 0 // not reported
	case 1:
		rc.CheckInIntervalSec = 900
	}
	return rc
}

func genCheckIn(r *rand.Rand, intervalSec int) *store.CheckInMeta {
	interval := time.Duration(max(intervalSec, 3600)) * time.Second
	age := time.Duration(r.Int64N(int64(interval)))
	if r.IntN(100) < 5 { // silent for hours to weeks
		age = 3*time.Hour + time.Duration(r.Int64N(int64(30*day)))
	}
	at := now.Add(-age)
	return &store.CheckInMeta{
		Seq:         uint64(r.IntN(5000) + 1),
		At:          at,
		Reason:      pick(r, []string{"interval", "interval", "interval", "boot", "change"}),
		BootID:      genID(r)[8:24],
		CollectedAt: at.Add(-time.Duration(r.IntN(5000)) * time.Millisecond),
	}
}

func genOS(r *rand.Rand) *wire.OS {
	switch n := r.IntN(100); {
	case n < 60:
		return &wire.OS{Family: "windows", ID: "windows", Name: "Windows 11 Pro", Version: "26100", Arch: "amd64"}
	case n < 95:
		return &wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 13", Version: "13", Kernel: "6.12.48", Arch: "amd64"}
	}
	return &wire.OS{Family: "darwin", ID: "macos", Name: "macOS 26", Version: "26.1", Arch: "arm64"}
}

func genApproval(r *rand.Rand) wire.Approval {
	if r.IntN(100) < 70 {
		return wire.Approval{}
	}
	a := wire.Approval{Required: true, LastApprovedAt: ago(time.Duration(r.IntN(72)) * time.Hour), ApprovedBy: "front-desk"}
	switch n := r.IntN(100); {
	case n < 80:
		a.ExpiresAt = ago(-time.Duration(r.IntN(30)+1) * day)
	case n < 90:
		a.ExpiresAt = ago(time.Duration(r.IntN(30)+1) * day)
	case n < 95:
		a.LastApprovedAt = nil
	}
	return a
}

func genPending(r *rand.Rand, os *wire.OS) []wire.PendingUpdate {
	n := 1 + r.IntN(5)
	if r.IntN(100) < 10 {
		n = 8 + r.IntN(20)
	}
	ups := make([]wire.PendingUpdate, n)
	for i := range ups {
		u := &ups[i]
		u.FirstSeen = ago(time.Duration(r.Int64N(int64(45 * day))))
		u.Security = r.IntN(3) == 0
		if os != nil && os.Family == "windows" {
			u.ID, u.Source = fmt.Sprintf("KB50%05d", r.IntN(3000)), "windows-update"
			continue
		}
		u.ID = pick(r, []string{"openssl", "libc6", "curl", "linux-image-amd64", "tzdata", "openssh-server", "sudo"})
		u.Version, u.Source = fmt.Sprintf("1.%d.%d", r.IntN(10), r.IntN(30)), "apt"
	}
	return ups
}

func genReach(r *rand.Rand) wire.Reachability {
	if r.IntN(2) == 0 {
		return wire.Reachability{LastSeen: ago(time.Duration(r.Int64N(int64(10 * day))))}
	}
	load := r.Float64() * 4
	present := r.IntN(2) == 0
	return wire.Reachability{
		Online:      true,
		Since:       ago(time.Duration(r.Int64N(int64(3 * day)))),
		LastSeen:    &now,
		Broker:      pick(r, []string{"eu-west-1", "eu-central-1", "us-east-1"}),
		Load1:       &load,
		UserPresent: &present,
	}
}
