package sessiond

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// TranscriptDir holds terminal transcripts inside the state directory.
const TranscriptDir = "transcripts"

// history notices sessions that end, records them, and sends their
// transcripts to the broker. It keeps the last session list it saw.
type history struct {
	mu     sync.Mutex                  // mu guards active
	active map[string]wire.SessionInfo // open sessions by ID, as last seen
}

// recordCommand keeps an exec'd command for the machine's history.
func (a *Agent) recordCommand(c wire.CommandRecord) {
	if err := a.db.AddCommand(c); err != nil {
		a.log.Warn("command history", "err", err)
	}
}

// sessionsChanged is the Listener's OnChange: sessions that are gone have
// ended.
func (a *Agent) sessionsChanged(cur []wire.SessionInfo) {
	now := a.cfg.Now().UTC()
	h := &a.history
	h.mu.Lock()
	if h.active == nil {
		h.active = map[string]wire.SessionInfo{}
	}
	var ended []wire.SessionInfo
	seen := map[string]bool{}
	for _, s := range cur {
		seen[s.Session] = true
		h.active[s.Session] = s
	}
	for id, s := range h.active {
		if !seen[id] {
			ended = append(ended, s)
			delete(h.active, id)
		}
	}
	h.mu.Unlock()
	for _, s := range ended {
		rec := wire.SessionRecord{ID: s.Session, Technician: s.Technician, Mode: s.Mode, Path: s.Path, Start: s.Started, End: now}
		if err := a.db.AddSession(rec); err != nil {
			a.log.Warn("session history", "err", err)
		}
		a.sendTranscripts(s.Session)
	}
	a.kickStatus()
}

// sendTranscripts uploads a session's transcripts to the broker holding
// the bridge, in the background. They stay on disk too.
func (a *Agent) sendTranscripts(session string) {
	files, _ := filepath.Glob(filepath.Join(a.cfg.StateDir, TranscriptDir, session+"-*.cast"))
	if len(files) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		broker, err := a.waitUp(ctx)
		if err != nil {
			return
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil || len(raw) > wire.MaxTranscript {
				a.log.Warn("transcript not sent", "file", f, "err", err, "bytes", len(raw))
				continue
			}
			t := wire.Transcript{Session: session, Name: filepath.Base(f), At: a.cfg.Now().UTC(), Cast: raw}
			if err := a.sendTranscript(ctx, broker, &t); err != nil {
				a.log.Warn("transcript not sent", "file", f, "err", err)
			}
		}
	}()
}

// sendTranscript files one transcript. A broker whose transcript quota is
// in use answers "unavailable"; the agent then tries again after a few
// seconds (jittered, so agents that ended sessions together spread out),
// until ctx ends.
func (a *Agent) sendTranscript(ctx context.Context, broker peer.ID, t *wire.Transcript) error {
	for {
		var r wire.Reply
		if err := bridge.Call(ctx, a.host, broker, wire.ProtoTranscript, t, &r, wire.MaxControl); err != nil {
			return err
		}
		if r.Error == nil {
			return nil
		}
		if r.Error.Code != wire.CodeUnavailable {
			return r.Error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (broker busy: %s)", ctx.Err(), r.Error.Message)
		case <-time.After(2*time.Second + rand.N(4*time.Second)):
		}
	}
}

// applyHistory summarises the history into a snapshot: the last 10
// commands and the last 10 sessions.
func (a *Agent) applyHistory(s *wire.Snapshot) {
	h, err := a.db.History()
	if err != nil {
		return
	}
	last := func(n int) int { return max(0, n-10) }
	if len(h.Commands) > 0 {
		s.Commands = h.Commands[last(len(h.Commands)):]
	}
	if len(h.Sessions) > 0 {
		s.Sessions = h.Sessions[last(len(h.Sessions)):]
	}
	for i := range s.Sessions {
		s.Sessions[i].Path = strings.TrimSpace(s.Sessions[i].Path)
	}
}
