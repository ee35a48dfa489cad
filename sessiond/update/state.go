package update

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// File names in Dir.
const (
	TrialFile   = "trial.json"
	HealthyFile = "healthy"
	OutcomeFile = "outcome.json"
)

// TrialEnv is set to "1" in the environment of a new binary on trial. It
// is outside the READYMESH_SESSIOND_ prefix, whose variables must each
// name a flag of sessiond run (peer/flagfile refuses any other).
const TrialEnv = "READYMESH_UPDATE_TRIAL"

// ExeEnv names, in the environment of a child the watchdog starts, the
// executable the update replaces (Trial.Exe). On macOS and Windows a
// program's own path is the name it was started by, which for a new
// binary on trial is EXE.new, gone once it is committed.
const ExeEnv = "READYMESH_UPDATE_EXE"

// FromWatchdog reports whether this process was started by a watchdog
// (a new binary on trial, or the committed one it relays to) and the
// executable the watchdog named. It removes both variables from the
// environment, so nothing the agent starts (scripts, sessions, the child
// of a later update) inherits them: call it once, before the agent
// starts anything.
func FromWatchdog() (trial bool, exe string) {
	trial, exe = os.Getenv(TrialEnv) == "1", os.Getenv(ExeEnv)
	os.Unsetenv(TrialEnv)
	os.Unsetenv(ExeEnv)
	if !trial {
		exe = ""
	}
	return trial, exe
}

// Dir is the update directory inside an agent's state directory.
func Dir(stateDir string) string { return filepath.Join(stateDir, "update") }

// Trial phases.
const (
	PhaseTrial       = "trial"        // the new binary is on trial
	PhaseCommitting  = "committing"   // it became healthy; the renames are under way
	PhaseRollingBack = "rolling-back" // it failed; EXE.new is being removed
)

// Trial is a trial in progress, as trial.json holds it.
type Trial struct {
	// ID names this trial; the child writes it into the healthy marker,
	// so a marker left from another trial never counts.
	ID      string `json:"id"`
	From    string `json:"from"` // the version that staged the update
	To      string `json:"to"`   // the version on trial
	Rollout string `json:"rollout,omitempty"`
	Job     string `json:"job,omitempty"` // the update job that ordered it
	// Exe is the executable the update replaces, absolute, symlinks
	// resolved; EXE.new and EXE.previous are next to it (PathsFor).
	Exe string `json:"exe"`
	// SHA256 and Size are the staged binary's, as the manifest says;
	// the watchdog checks EXE.new against them before it starts it.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Manifest and Signature are the release as the order carried them:
	// the child verifies them again to pin the manifest's next key.
	Manifest  []byte `json:"manifest"`
	Signature string `json:"signature"`
	// WindowSec is the health window; Deadline is when it ends.
	WindowSec int       `json:"window_s"`
	Created   time.Time `json:"created"`
	Deadline  time.Time `json:"deadline"`
	// Starts counts the child's starts, saved before each one, so a
	// watchdog that dies and is started again counts the start it lost.
	Starts   int    `json:"starts"`
	LastExit string `json:"last_exit,omitempty"` // how the last start ended
	LastLine string `json:"last_line,omitempty"` // the last line it wrote to stderr
	Phase    string `json:"phase"`
	Detail   string `json:"detail,omitempty"` // why, when rolling back
}

// NewTrial returns a trial of version to, ordered now with a health
// window of window, with a fresh ID.
func NewTrial(from, to string, window time.Duration, now time.Time) *Trial {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic("update: crypto/rand failed: " + err.Error())
	}
	return &Trial{ID: hex.EncodeToString(id[:]), From: from, To: to, WindowSec: int(window / time.Second),
		Created: now.UTC(), Deadline: now.Add(window).UTC(), Phase: PhaseTrial}
}

// Window is the trial's health window.
func (t *Trial) Window() time.Duration { return time.Duration(t.WindowSec) * time.Second }

// Report is the update report of the trial's outcome.
func (t *Trial) Report(outcome, detail string, at time.Time) wire.UpdateReport {
	return wire.UpdateReport{From: t.From, To: t.To, Rollout: t.Rollout, Outcome: outcome,
		Detail: clip(detail, 1024), At: at.UTC()}
}

// LoadTrial reads the trial in progress in stateDir; it returns nil and
// no error when there is none.
func LoadTrial(stateDir string) (*Trial, error) {
	var t Trial
	ok, err := readJSON(filepath.Join(Dir(stateDir), TrialFile), &t)
	if err != nil || !ok {
		return nil, err
	}
	if t.ID == "" || t.Exe == "" || t.Phase == "" {
		return nil, fmt.Errorf("update: %s is incomplete", TrialFile)
	}
	return &t, nil
}

// Save writes the trial to stateDir, atomically.
func (t *Trial) Save(stateDir string) error {
	return writeJSON(filepath.Join(Dir(stateDir), TrialFile), t)
}

// RemoveTrial deletes the trial state and the healthy marker: the trial
// is over.
func RemoveTrial(stateDir string) error {
	err := removeIfExists(filepath.Join(Dir(stateDir), TrialFile))
	return errors.Join(err, removeIfExists(filepath.Join(Dir(stateDir), HealthyFile)))
}

// MarkHealthy writes the healthy marker of trial t: the child calls it
// once its first check-in on trial was acknowledged.
func MarkHealthy(stateDir string, t *Trial) error {
	return writeFile(filepath.Join(Dir(stateDir), HealthyFile), []byte(t.ID+"\n"))
}

// healthy reports whether the marker of trial t is there.
func healthy(stateDir string, t *Trial) bool {
	b, err := os.ReadFile(filepath.Join(Dir(stateDir), HealthyFile))
	return err == nil && strings.TrimSpace(string(b)) == t.ID
}

// Outcome is the last update's outcome, as outcome.json holds it.
type Outcome struct {
	Report wire.UpdateReport `json:"report"`
	// Reported is set once a check-in carrying Report was acknowledged.
	Reported bool `json:"reported"`
}

// LoadOutcome reads the last update's outcome; nil when there was none.
func LoadOutcome(stateDir string) (*Outcome, error) {
	var o Outcome
	ok, err := readJSON(filepath.Join(Dir(stateDir), OutcomeFile), &o)
	if err != nil || !ok {
		return nil, err
	}
	return &o, nil
}

// SaveOutcome writes the last update's outcome.
func SaveOutcome(stateDir string, o Outcome) error {
	return writeJSON(filepath.Join(Dir(stateDir), OutcomeFile), o)
}

// readJSON decodes the file at path into v; it reports false when the
// file does not exist.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("update: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("update: %s: %w", filepath.Base(path), err)
	}
	return true, nil
}

// writeJSON writes v as JSON to path through a synced temporary file.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return writeFile(path, append(b, '\n'))
}

// writeFile replaces path with b: written and synced under another name
// first, then renamed, so a crash leaves the old file or the new one.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("update: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// clip cuts s to at most n bytes and drops bytes that are not UTF-8 (a
// rune cut in two among them).
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
