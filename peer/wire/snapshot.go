package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Snapshot is what an agent knows about its machine at one check-in: the
// readiness layer's raw material. The broker stores the latest one per
// machine and a bounded history of summaries.
type Snapshot struct {
	CollectedAt    time.Time        `json:"collected_at"`
	Hostname       string           `json:"hostname"`
	BootID         string           `json:"boot_id,omitempty"`
	OS             OS               `json:"os"`
	AgentVersion   string           `json:"agent_version"`
	Packages       []Package        `json:"packages,omitempty"`
	PendingUpdates []PendingUpdate  `json:"pending_updates,omitempty"`
	Runtime        RuntimeConfig    `json:"runtime"`
	Approval       Approval         `json:"approval"`
	Commands       []CommandRecord  `json:"commands,omitempty"`
	Sessions       []SessionRecord  `json:"sessions,omitempty"`
	Addresses      []string         `json:"addresses,omitempty"`
	CollectorErrs  []CollectorError `json:"collector_errors,omitempty"`
	// LastUncleanEnd is the newest time the agent's run ended without a
	// clean stop, kept by the agent and reported in every snapshot.
	LastUncleanEnd *RunEnd `json:"last_unclean_end,omitempty"`
	// PackagesSHA256, when set, makes the snapshot compact: Packages is
	// left out, and this is PackagesSHA256(list) of the list the agent
	// last sent whole and had acknowledged. Only a quiet check-in
	// (ReasonQuiet) may be compact: on a metered connection the package
	// list is most of a snapshot's bytes and rarely changes. The broker
	// fills Packages from its stored snapshot when that list hashes the
	// same, and stores the snapshot whole (this field empty); otherwise
	// it refuses the check-in with CodeNeedFull and stores nothing, and
	// the agent sends it again with the whole list. New in 0.4.0.
	PackagesSHA256 string `json:"packages_sha256,omitempty"`
}

// PackagesSHA256 is the hex SHA-256 of the JSON encoding of pkgs, as
// encoding/json writes a []Package (an empty or nil list is "[]").
// Text that is not valid UTF-8 is hashed as a broker stores it, after a
// JSON round trip has replaced the bad bytes, so both ends agree.
func PackagesSHA256(pkgs []Package) string {
	if pkgs == nil {
		pkgs = []Package{}
	}
	raw, err := json.Marshal(pkgs)
	if err != nil {
		panic("wire: encode packages: " + err.Error()) // two strings always encode
	}
	if !packagesUTF8(pkgs) {
		var back []Package
		if err := json.Unmarshal(raw, &back); err != nil {
			panic("wire: decode packages: " + err.Error())
		}
		raw, _ = json.Marshal(back)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func packagesUTF8(pkgs []Package) bool {
	for _, p := range pkgs {
		if !utf8.ValidString(p.Name) || !utf8.ValidString(p.Version) {
			return false
		}
	}
	return true
}

// OS describes the operating system.
type OS struct {
	// Family is "linux", "windows" or "darwin".
	Family  string `json:"family"`
	ID      string `json:"id,omitempty"`      // os-release ID: debian, ubuntu, windows…
	Name    string `json:"name"`              // PRETTY_NAME or product name
	Version string `json:"version,omitempty"` // VERSION_ID or build number
	Kernel  string `json:"kernel,omitempty"`
	Arch    string `json:"arch,omitempty"`
	// Edition is the product edition where the system has one: Windows'
	// EditionID ("Professional", "ServerStandard").
	Edition string `json:"edition,omitempty"`
	// DisplayVersion is the release name people use: Windows' "23H2",
	// macOS' "Sonoma".
	DisplayVersion string `json:"display_version,omitempty"`
	// Build is the exact build: Windows' "22631.3007" (build and update
	// build revision), macOS' "23C71".
	Build string `json:"build,omitempty"`
}

// Package is one installed software package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// PendingUpdate is one update the machine's package manager would install.
type PendingUpdate struct {
	// ID names the update: a package name on Linux, a KB number on Windows.
	ID       string `json:"id"`
	Version  string `json:"version,omitempty"` // the version it would install
	Source   string `json:"source,omitempty"`  // apt, rpm, windows-update…
	Security bool   `json:"security,omitempty"`
	// Severity is the vendor's rating where it gives one: Windows Update's
	// MsrcSeverity ("Critical", "Important", "Moderate", "Low").
	Severity string `json:"severity,omitempty"`
	// Title is the vendor's name for the update where the ID alone does
	// not say what it is (Windows and macOS updates).
	Title     string     `json:"title,omitempty"`
	FirstSeen *time.Time `json:"first_seen,omitempty"` // set by the broker
}

// Consent policies, as reported by the agent.
const (
	ConsentNever   = "never"   // no approval needed
	ConsentWindow  = "window"  // one approval covers a time window
	ConsentSession = "session" // every session needs its own approval
)

// RuntimeConfig is the agent's configuration as it runs.
type RuntimeConfig struct {
	CheckInIntervalSec int    `json:"check_in_interval_s"`
	HeartbeatSec       int    `json:"heartbeat_s,omitempty"`
	ConsentPolicy      string `json:"consent_policy"`
	// OnMetered is the metered-connection policy in force (normal or
	// quiet) and Metered whether the connection is metered now.
	OnMetered string `json:"on_metered,omitempty"`
	Metered   bool   `json:"metered,omitempty"`
}

// Approval is the machine's consent posture.
type Approval struct {
	Required       bool       `json:"required"`
	LastApprovedAt *time.Time `json:"last_approved_at,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	ApprovedBy     string     `json:"approved_by,omitempty"`
}

// CommandRecord is one command an agent ran: exec'd in a live session, or
// a queued job's script. The agent keeps the last 100 and reports the last
// 10 in each snapshot's history.
type CommandRecord struct {
	At       time.Time `json:"at"`
	Command  string    `json:"command"`
	ExitCode int       `json:"exit_code"`
	Session  string    `json:"session,omitempty"`
}

// SessionRecord is one past live session.
type SessionRecord struct {
	ID         string    `json:"id"`
	Technician string    `json:"technician"`
	Mode       string    `json:"mode"`
	Path       string    `json:"path,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
}

// CollectorError records a collector that failed; the rest of the snapshot
// is still stored.
type CollectorError struct {
	Collector string `json:"collector"`
	Error     string `json:"error"`
}

// Limits on list sizes inside a snapshot. They bound memory long before the
// byte limit does on pathological input.
const (
	maxPackages = 100_000
	maxPending  = 10_000
	maxHistory  = 1_000
	maxText     = 4096
)

var families = map[string]bool{"linux": true, "windows": true, "darwin": true}

// Validate checks a snapshot's fields. It is called by Decode.
func (s *Snapshot) Validate() error {
	if s.Hostname == "" {
		return errors.New("snapshot: hostname is empty")
	}
	if s.LastUncleanEnd != nil {
		if err := validPast("snapshot: last_unclean_end.at", s.LastUncleanEnd.At); err != nil {
			return err
		}
		if err := validAwayDetail("snapshot: last_unclean_end", s.LastUncleanEnd.Detail); err != nil {
			return err
		}
	}
	if s.Runtime.CheckInIntervalSec > maxCheckInIntervalSec {
		return fmt.Errorf("snapshot: runtime.check_in_interval_s %d is over 31 days", s.Runtime.CheckInIntervalSec)
	}
	switch s.Runtime.OnMetered {
	case "", MeteredNormal, MeteredQuiet:
	default:
		return fmt.Errorf("snapshot: runtime.on_metered %q is not normal or quiet", s.Runtime.OnMetered)
	}
	if !families[s.OS.Family] {
		return fmt.Errorf("snapshot: os.family %q is not linux, windows or darwin", s.OS.Family)
	}
	if s.PackagesSHA256 != "" {
		if len(s.Packages) > 0 {
			return errors.New("snapshot: packages_sha256 is for a compact snapshot, which leaves packages out")
		}
		if !isSHA256Hex(s.PackagesSHA256) {
			return errors.New("snapshot: packages_sha256 is not a hex SHA-256")
		}
	}
	if s.AgentVersion == "" {
		return errors.New("snapshot: agent_version is empty")
	}
	if s.CollectedAt.IsZero() {
		return errors.New("snapshot: collected_at is missing")
	}
	switch {
	case len(s.Packages) > maxPackages:
		return fmt.Errorf("snapshot: %d packages, limit %d", len(s.Packages), maxPackages)
	case len(s.PendingUpdates) > maxPending:
		return fmt.Errorf("snapshot: %d pending updates, limit %d", len(s.PendingUpdates), maxPending)
	case len(s.Commands) > maxHistory || len(s.Sessions) > maxHistory:
		return errors.New("snapshot: command or session history too long")
	}
	for i, u := range s.PendingUpdates {
		if u.ID == "" || len(u.ID) > maxText {
			return fmt.Errorf("snapshot: pending_updates[%d]: bad id", i)
		}
	}
	for i, p := range s.Packages {
		if p.Name == "" || len(p.Name) > maxText {
			return fmt.Errorf("snapshot: packages[%d]: bad name", i)
		}
	}
	if s.Runtime.CheckInIntervalSec < 0 || s.Runtime.HeartbeatSec < 0 {
		return errors.New("snapshot: negative interval in runtime")
	}
	switch s.Runtime.ConsentPolicy {
	case "", ConsentNever, ConsentWindow, ConsentSession:
	default:
		return fmt.Errorf("snapshot: unknown consent_policy %q", s.Runtime.ConsentPolicy)
	}
	return nil
}

// isSHA256Hex reports whether s is a SHA-256 in lower-case hex.
func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxCheckInIntervalSec bounds the check-in interval a snapshot reports:
// brokers compute times with it.
const maxCheckInIntervalSec = 31 * 24 * 3600
